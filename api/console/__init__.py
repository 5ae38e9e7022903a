"""The approver and ops console (issue 12): server-rendered pages served by the API itself under
`/console`, with their CSS and script from `static/` (no build step, no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.console import actions, pages, signin
from api.console.session import Sessions

STATIC = Path(__file__).resolve().parent / "static"


def install(app: FastAPI) -> None:
    for module in (signin, pages, actions):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")


def start(app: FastAPI) -> None:
    """In the lifespan, once the app has its sessionmaker and settings."""
    app.state.console_sessions = Sessions(app.state.sessionmaker, app.state.settings)
