"""LoopLabel backend: core library and web tier (never imports TensorFlow)."""

__version__ = "0.1.0"


def create_app(settings=None):
    """Build the Flask application (see :mod:`backend.app`)."""
    from backend.app import build_app

    return build_app(settings)
