"""Everything of the refund pipeline beside its design card's top level (`workflows/`,
`activities/`, `api/`, `worker.py`): the database layer, gateways, domain, CLI, runtime, and
the dev-only embedded servers and sandboxes. One installed name, so nothing collides."""
