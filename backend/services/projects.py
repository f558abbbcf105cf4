"""Projects: create, edit, list, and validate their settings."""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.core.pixel_size import MAX_PIXEL_SIZE_UM, MIN_PIXEL_SIZE_UM
from backend.errors import ConflictError, NotFoundError, UserError
from backend.models import FEATURES, PLATFORMS, Image, Project

DEFAULT_COLOURS = ["#0050ff", "#00ff40", "#ff2020", "#ffd000", "#ff00ff", "#00e5ff", "#ff8000"]
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
EDITABLE = (
    "channels",
    "features",
    "crop_size",
    "overlap",
    "annotators_per_crop",
    "quorum",
    "gold_fraction",
    "platform",
    "platform_settings",
    "frame_ancestors",
    "instructions",
    "retrain_min_images",
    "retrain_every_hours",
    "auto_promote",
    "pixel_size_um",
    "crowd_policy",
)


def normalise_channels(channels: Any) -> list[dict]:
    """``["DAPI", "CD45"]`` or ``[{"name":..., "color":...}]`` → list of {name, color} dicts."""
    if not isinstance(channels, list) or not channels:
        raise UserError("channels must be a non-empty list of channel names", field="channels")
    if len(channels) > 64:
        raise UserError("a project has at most 64 channels", field="channels")
    result = []
    for i, ch in enumerate(channels):
        if isinstance(ch, str):
            ch = {"name": ch}
        if not isinstance(ch, dict) or not isinstance(ch.get("name"), str) or not ch["name"].strip():
            raise UserError(f"channel {i} needs a non-empty name", field="channels")
        colour = ch.get("color") or DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)]
        if not HEX_COLOUR.match(colour):
            raise UserError(f"channel {ch['name']!r}: colour must look like #rrggbb", field="channels")
        result.append({"name": ch["name"].strip()[:64], "color": colour.lower()})
    names = [c["name"] for c in result]
    if len(set(names)) != len(names):
        raise UserError("channel names must be unique", field="channels")
    return result


def _int_field(values: dict, name: str, lo: int, hi: int) -> int:
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value))
        except ValueError:
            raise UserError(f"{name} must be an integer", field=name) from None
    if not lo <= value <= hi:
        raise UserError(f"{name} must be between {lo} and {hi}, got {value}", field=name)
    return value


def pixel_size_value(value: Any, field: str = "pixel_size_um") -> float | None:
    """An admin's pixel size (µm per pixel): None or ``""`` → None (unknown), else a number in
    0.01–100 (JSON number or its text). Raises UserError naming ``field`` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    message = (f"{field} must be the pixel size in µm per pixel, a number from {MIN_PIXEL_SIZE_UM:g} "
               f"to {MAX_PIXEL_SIZE_UM:g}, or empty if unknown")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserError(message, field=field)
    try:
        number = float(value.strip().replace(",", ".")) if isinstance(value, str) else float(value)
    except (ValueError, OverflowError):
        raise UserError(f"{message}; got {str(value)[:40]!r}", field=field) from None
    if not math.isfinite(number) or not MIN_PIXEL_SIZE_UM <= number <= MAX_PIXEL_SIZE_UM:
        raise UserError(f"{message}; got {str(value)[:40]}", field=field)
    return number


def validate_settings(values: dict, current: Project | None = None) -> dict:
    """Check project settings; returns the cleaned values. Raises UserError naming the field."""
    unknown = set(values) - set(EDITABLE) - {"name"}
    if unknown:
        raise UserError(f"unknown project setting(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    out: dict[str, Any] = {}
    merged = {c: getattr(current, c) for c in EDITABLE} if current is not None else {}
    merged.update(values)
    if "channels" in values:
        out["channels"] = normalise_channels(values["channels"])
    if "features" in values:
        feats = values["features"]
        if not isinstance(feats, list) or not feats or any(f not in FEATURES for f in feats):
            raise UserError(f"features must be a non-empty subset of {list(FEATURES)}", field="features")
        out["features"] = [f for f in FEATURES if f in feats]
    for name, lo, hi in (
        ("crop_size", 32, 2048),
        ("annotators_per_crop", 1, 20),
        ("retrain_min_images", 1, 100000),
    ):
        if name in values:
            out[name] = _int_field(values, name, lo, hi)
            merged[name] = out[name]
    crop_size = merged.get("crop_size", 270)
    if "overlap" in values or "crop_size" in values:
        overlap = merged.get("overlap")
        if overlap is None:
            overlap = -(-crop_size // 10)
        merged["overlap"] = overlap
        out["overlap"] = _int_field(merged, "overlap", 0, 10**6)
        if out["overlap"] >= crop_size:
            raise UserError(
                f"overlap must be smaller than the crop size ({crop_size}), got {out['overlap']}",
                field="overlap",
            )
    if "quorum" in values or "annotators_per_crop" in values:
        quorum = merged.get("quorum")
        if quorum is not None:
            k = merged.get("annotators_per_crop", 3)
            merged["quorum"] = quorum
            out["quorum"] = _int_field(merged, "quorum", 1, 20)
            if out["quorum"] > k:
                raise UserError(
                    f"quorum ({out['quorum']}) cannot exceed annotators per crop ({k})", field="quorum"
                )
        else:
            out["quorum"] = None
    if "gold_fraction" in values:
        try:
            gf = float(values["gold_fraction"])
        except (TypeError, ValueError):
            raise UserError("gold_fraction must be a number between 0 and 0.5", field="gold_fraction") from None
        if not 0.0 <= gf <= 0.5:
            raise UserError("gold_fraction must be between 0 and 0.5", field="gold_fraction")
        out["gold_fraction"] = gf
    if "platform" in values:
        if values["platform"] not in PLATFORMS:
            raise UserError(f"platform must be one of {', '.join(PLATFORMS)}", field="platform")
        out["platform"] = values["platform"]
    if "platform_settings" in values:
        if not isinstance(values["platform_settings"], dict):
            raise UserError("platform_settings must be an object", field="platform_settings")
        out["platform_settings"] = values["platform_settings"]
    if "frame_ancestors" in values:
        fa = values["frame_ancestors"]
        if isinstance(fa, str):
            fa = fa.split()
        if not isinstance(fa, list) or not all(
            # A host may start with "*." (subdomains of one site), never be "*" itself: any site.
            isinstance(a, str)
            and re.fullmatch(r"('self'|'none'|https?://(\*\.[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+|[A-Za-z0-9.\-]+)(:\d+)?)", a)
            for a in fa
        ):
            raise UserError(
                "frame_ancestors must be origins like https://app.prolific.com, https://*.example.org or "
                "'self' (a wildcard host such as https://* or * would let any site frame the task pages)",
                field="frame_ancestors",
            )
        out["frame_ancestors"] = fa
    if "instructions" in values:
        if not isinstance(values["instructions"], str) or len(values["instructions"]) > 20000:
            raise UserError("instructions must be text of at most 20000 characters", field="instructions")
        out["instructions"] = values["instructions"]
    if "retrain_every_hours" in values:
        v = values["retrain_every_hours"]
        if v in (None, ""):
            out["retrain_every_hours"] = None
        else:
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise UserError("retrain_every_hours must be a number", field="retrain_every_hours") from None
            if v <= 0:
                raise UserError("retrain_every_hours must be positive", field="retrain_every_hours")
            out["retrain_every_hours"] = v
    if "auto_promote" in values:
        out["auto_promote"] = bool(values["auto_promote"])
    if "pixel_size_um" in values:
        out["pixel_size_um"] = pixel_size_value(values["pixel_size_um"])
    if "crowd_policy" in values:
        from backend.services.crowd_policy import validate_policy

        out["crowd_policy"] = validate_policy(values["crowd_policy"])
    return out


def create_project(session: Session, name: str, channels: list, **settings: Any) -> Project:
    """Create a project. Raises UserError on invalid settings, ConflictError on a taken name."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,119}", name or ""):
        raise UserError(
            "project name must be 1-120 letters, digits, spaces, '.', '_' or '-'", field="name"
        )
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise ConflictError(f"a project named {name!r} already exists", field="name")
    values = {"channels": channels, **settings}
    values.setdefault("crop_size", 270)
    cleaned = validate_settings(values)
    project = Project(name=name, **cleaned)
    session.add(project)
    session.flush()
    return project


def update_project(session: Session, project_id: int, values: dict) -> Project:
    project = get_project(session, project_id)
    cleaned = validate_settings(values, current=project)
    if "channels" in cleaned and project.images and len(cleaned["channels"]) != len(project.channels):
        raise UserError(
            "the number of channels cannot change once images are imported", field="channels"
        )
    for key, value in cleaned.items():
        setattr(project, key, value)
    session.flush()
    return project


def get_project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"no project with id {project_id}")
    return project


def find_project(session: Session, ref: str) -> Project:
    """A project by id (digits) or by name."""
    if ref.isdigit():
        return get_project(session, int(ref))
    project = session.scalar(select(Project).where(Project.name == ref))
    if project is None:
        raise NotFoundError(f"no project named {ref!r}")
    return project


def project_dict(session: Session, project: Project) -> dict:
    counts = dict(
        session.execute(
            select(Image.status, func.count()).where(Image.project_id == project.id).group_by(Image.status)
        ).all()
    )
    return {
        "id": project.id,
        "name": project.name,
        "channels": project.channels,
        "features": project.features,
        "crop_size": project.crop_size,
        "overlap": project.overlap,
        "annotators_per_crop": project.annotators_per_crop,
        "quorum": project.quorum,
        "gold_fraction": project.gold_fraction,
        "platform": project.platform,
        "platform_settings": project.platform_settings,
        "frame_ancestors": project.frame_ancestors,
        "instructions": project.instructions,
        "retrain_min_images": project.retrain_min_images,
        "retrain_every_hours": project.retrain_every_hours,
        "auto_promote": project.auto_promote,
        "pixel_size_um": project.pixel_size_um,
        "crowd_policy": project.crowd_policy or {"policy": "all"},
        "n_images": sum(counts.values()),
        "images_by_status": counts,
        "created_at": project.created_at.isoformat() + "Z",
    }


def instructions_html(text: str) -> str:
    """The project's Markdown instructions as sanitised HTML (:mod:`backend.services.instructions`)."""
    from backend.services.instructions import instructions_html as render

    return render(text)


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.id)))
