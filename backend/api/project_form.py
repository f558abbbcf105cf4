"""The project settings HTML form: what it shows, and the settings it sends to the project service.

Every value travels as the text the admin typed, so a rejected form comes back exactly as it was
sent, with the service's message next to the field it names. Validation itself stays in
:func:`backend.services.projects.validate_settings`; this module only turns text into values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from backend.errors import UserError
from backend.models import FEATURES, PLATFORMS
from backend.services.projects import DEFAULT_COLOURS

NUMBER_FIELDS = ("crop_size", "overlap", "annotators_per_crop", "gold_fraction", "retrain_min_images")


def settings_text(settings: dict) -> str:
    """Platform settings as ``key = value`` lines (JSON when a value is not plain text)."""
    if not settings:
        return ""
    if all(isinstance(v, str) and "\n" not in v for v in settings.values()):
        return "\n".join(f"{k} = {v}" for k, v in settings.items())
    return json.dumps(settings, indent=2)


def parse_settings_text(text: str) -> dict:
    """``key = value`` lines (blank lines and ``#`` comments skipped) or a JSON object → dict."""
    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"platform settings: not valid JSON ({exc.msg} at line {exc.lineno})",
                            field="platform_settings") from None
        if not isinstance(value, dict):
            raise UserError("platform settings must be a JSON object", field="platform_settings")
        return value
    out = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise UserError(f"platform settings line {n}: write key = value", field="platform_settings")
        out[key.strip()] = value.strip()
    return out


@dataclass
class ProjectForm:
    """The form's fields as text, plus the error to show next to each (by field name)."""

    name: str = ""
    channels: list[dict] = field(default_factory=list)  # [{"name", "color"}]
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    crop_size: str = "270"
    overlap: str = ""
    annotators_per_crop: str = "3"
    quorum: str = ""
    gold_fraction: str = "0.1"
    platform: str = "generic"
    platform_settings: str = ""
    frame_ancestors: str = ""
    instructions: str = ""
    retrain_min_images: str = "10"
    retrain_every_hours: str = ""
    auto_promote: bool = True
    errors: dict[str, str] = field(default_factory=dict)

    platforms = PLATFORMS
    all_features = FEATURES

    @classmethod
    def defaults(cls) -> "ProjectForm":
        """The new-project form: two channels and the project defaults."""
        return cls(channels=[{"name": "DAPI", "color": "#0050ff"}, {"name": "membrane", "color": "#00ff40"}])

    @classmethod
    def from_project(cls, p: dict) -> "ProjectForm":
        """From :func:`backend.services.projects.project_dict`."""
        def text(v):
            return "" if v is None else str(v)

        return cls(
            name=p["name"], channels=[dict(c) for c in p["channels"]], features=list(p["features"]),
            crop_size=text(p["crop_size"]), overlap=text(p["overlap"]),
            annotators_per_crop=text(p["annotators_per_crop"]), quorum=text(p["quorum"]),
            gold_fraction=text(p["gold_fraction"]), platform=p["platform"],
            platform_settings=settings_text(p["platform_settings"] or {}),
            frame_ancestors=" ".join(p["frame_ancestors"] or []), instructions=p["instructions"] or "",
            retrain_min_images=text(p["retrain_min_images"]), retrain_every_hours=text(p["retrain_every_hours"]),
            auto_promote=bool(p["auto_promote"]),
        )

    @classmethod
    def from_request(cls, form, name: str | None = None) -> "ProjectForm":
        """From the posted form (a werkzeug MultiDict); ``name`` fixed when editing."""
        names = form.getlist("channel_name")
        colours = form.getlist("channel_color")
        channels = [{"name": n.strip(), "color": (colours[i] if i < len(colours) else "").strip()}
                    for i, n in enumerate(names) if n.strip()]
        return cls(
            name=name if name is not None else form.get("name", "").strip(),
            channels=channels, features=[f for f in form.getlist("features") if f in FEATURES],
            crop_size=form.get("crop_size", "").strip(), overlap=form.get("overlap", "").strip(),
            annotators_per_crop=form.get("annotators_per_crop", "").strip(),
            quorum=form.get("quorum", "").strip(), gold_fraction=form.get("gold_fraction", "").strip(),
            platform=form.get("platform", "generic"), platform_settings=form.get("platform_settings", ""),
            frame_ancestors=form.get("frame_ancestors", ""), instructions=form.get("instructions", ""),
            retrain_min_images=form.get("retrain_min_images", "").strip(),
            retrain_every_hours=form.get("retrain_every_hours", "").strip(),
            auto_promote=form.get("auto_promote") in ("1", "on", "true", "yes"),
        )

    def settings(self) -> tuple[str, dict]:
        """The project name and the settings to create or update it with.

        Blank number fields are left out (the default, or the current value); a blank quorum
        means a simple majority and a blank retraining period none.
        """
        values: dict = {
            "channels": [{"name": c["name"], "color": c["color"] or None} for c in self.channels],
            "features": list(self.features),
            "platform": self.platform,
            "platform_settings": parse_settings_text(self.platform_settings),
            "frame_ancestors": self.frame_ancestors.split(),
            "instructions": self.instructions.replace("\r\n", "\n"),
            "quorum": self.quorum or None,
            "retrain_every_hours": self.retrain_every_hours or None,
            "auto_promote": self.auto_promote,
        }
        for name in NUMBER_FIELDS:
            if getattr(self, name):
                values[name] = getattr(self, name)
        return self.name, values

    def channel_rows(self, spare: int = 2) -> list[dict]:
        """The channels plus ``spare`` blank rows to add more (a row without a name is ignored)."""
        n = len(self.channels)
        return list(self.channels) + [{"name": "", "color": DEFAULT_COLOURS[(n + i) % len(DEFAULT_COLOURS)]}
                                      for i in range(spare)]
