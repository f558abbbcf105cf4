"""The interface every crowd platform adapter implements."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from backend.errors import UserError

WORKER_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,128}$")


@dataclass(frozen=True)
class Identity:
    """Who is asking for a task, as the platform names them."""

    worker_id: str
    params: dict = field(default_factory=dict)  # the platform's parameters worth keeping
    preview: bool = False  # MTurk preview: read-only, no lease
    crop_id: int | None = None  # per-crop URLs (one row per crop)


@dataclass(frozen=True)
class CompletionAction:
    """What the page does after a successful submit."""

    kind: str  # "post_message" | "redirect" | "form_post"
    code: str
    url: str | None = None
    fields: dict = field(default_factory=dict)
    show_code: bool = False

    def as_dict(self) -> dict:
        return {"kind": self.kind, "code": self.code, "url": self.url, "fields": self.fields,
                "show_code": self.show_code}


class CrowdPlatform:
    name = "base"

    def identify(self, params: dict) -> Identity:
        raise NotImplementedError

    def completion(self, code: str, identity_params: dict, settings: dict) -> CompletionAction:
        raise NotImplementedError

    # --- shared parsing ---
    @staticmethod
    def worker(params: dict, *names: str) -> str:
        for name in names:
            value = params.get(name)
            if value:
                if not WORKER_ID.match(value):
                    raise UserError(f"{name} must be 1-128 letters, digits or _.:@-", field=name)
                return value
        raise UserError(f"the task link lacks the worker id ({' or '.join(names)})", field=names[0])

    @staticmethod
    def crop(params: dict) -> int | None:
        raw = params.get("crop")
        if raw in (None, ""):
            return None
        if not str(raw).isdigit():
            raise UserError("crop must be a crop id", field="crop")
        return int(raw)
