"""Crowd platform adapters: who the worker is, and how a finished task is reported back.

Each platform reads its own URL parameters into an :class:`Identity` and describes the
completion handshake the page performs after submit. The platform's worker id is only an
identifier: the server keeps its own completion record and trusts nothing else from the URL.
"""

from backend.crowd.base import CompletionAction, CrowdPlatform, Identity
from backend.crowd.platforms import PLATFORMS, platform_for

__all__ = ["CompletionAction", "CrowdPlatform", "Identity", "PLATFORMS", "platform_for"]
