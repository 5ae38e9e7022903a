"""How our HTTP servers (the API, the gateway sandboxes) hold idle connections."""

from __future__ import annotations

# Longer than any client keeps an idle connection (httpx 5 s, a proxy's upstream 60 s, requests'
# pool until the server closes it): uvicorn's default of 5 s races httpx's 5 s, and a request
# arriving on a connection in the loop turn that closes it is reset unanswered (the client's
# httpx.ReadError or requests' ConnectionError; nothing in the server's log).
KEEP_ALIVE_SECONDS = 75
