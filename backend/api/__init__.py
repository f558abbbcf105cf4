"""HTTP blueprints: thin — parse the request, call a service, return JSON or bytes."""

from flask import current_app

from backend.runtime import Runtime


def runtime() -> Runtime:
    """The Runtime (database, store, queue) of the running app."""
    return current_app.extensions["looplabel"]
