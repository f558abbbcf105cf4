"""Which crops of a round go to the crowd: ``all``, a ``budget`` of the most uncertain, or all but
the ones the model is sure of (``confident-skip``).

A policy is ``{"policy": "all"}``, ``{"policy": "budget", "budget": B}`` or
``{"policy": "confident-skip", "skip_below": t}``, set per project (the default of its rounds)
and per round. Each crop is scored when it is cut (``worker.jobs.crop_image``, from the uncertainty
the predict job stored): ``expected_fixes`` (cells likely to need a correction) and ``uncertainty``
(that per cell, 0..1).

* ``confident-skip``: a crop whose uncertainty is below ``skip_below`` skips the crowd.
* ``budget``: crops wait (``held``) until every image of the round is cut; then the B crops with
  the most expected fixes go to the crowd and the others skip it (:func:`allocate_round`).

A crop that skips the crowd is fused to the prediction at once, marked ``source = "model"``; it
is stitched and reviewed like any other (the reviewer sees which crops nobody checked), and the
dataset records it. Gold crops (hidden quality checks) are not counted in a budget and never skip.
A policy changed mid-round applies to the crops nobody has started: every lease and submission
is kept.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.errors import UserError
from backend.models import Assignment, Crop, Project, Round
from backend.services import labels_io
from backend.storage import BlobStore

POLICIES = ("all", "budget", "confident-skip")
DEFAULT_SKIP_BELOW = 0.05
"""confident-skip's default: skip a crop when under 5 % of its cells are likely to need a fix."""


def validate_policy(value) -> dict:
    """A policy from an API body, checked; raises UserError naming what is wrong."""
    if value is None:
        return {"policy": "all"}
    if isinstance(value, str):
        value = {"policy": value}
    if not isinstance(value, dict):
        raise UserError('policy must be an object such as {"policy": "budget", "budget": 20}')
    name = value.get("policy")
    if name not in POLICIES:
        raise UserError(f"policy must be one of {', '.join(POLICIES)}, got {name!r}")
    unknown = set(value) - {"policy", "budget", "skip_below"}
    if unknown:
        raise UserError(f"unknown policy field(s) {sorted(unknown)}; use policy, budget, skip_below")
    out = {"policy": name}
    if name == "budget":
        budget = value.get("budget")
        if isinstance(budget, bool) or not isinstance(budget, int) or not 0 <= budget <= 1_000_000:
            raise UserError("a budget policy needs budget: a whole number of crowd crops (0 to 1,000,000)")
        out["budget"] = budget
    if name == "confident-skip":
        skip = value.get("skip_below", DEFAULT_SKIP_BELOW)
        if isinstance(skip, bool) or not isinstance(skip, (int, float)) or not 0.0 <= float(skip) <= 1.0:
            raise UserError("skip_below must be a number between 0 and 1 (the crop uncertainty under "
                            "which a crop skips the crowd)")
        out["skip_below"] = float(skip)
    return out


def policy_from_params(params: dict) -> dict:
    """A policy from form fields or JSON (``policy``, ``budget``, ``skip_below``), checked."""
    value = params.get("policy")
    if isinstance(value, dict):
        return validate_policy(value)
    out = {"policy": value}
    for name, kind in (("budget", int), ("skip_below", float)):
        raw = params.get(name)
        if raw in (None, ""):
            continue
        if isinstance(raw, str):
            try:
                raw = kind(raw.strip())
            except ValueError:
                raise UserError(f"{name} must be a number, got {raw!r}") from None
        out[name] = raw
    if out["policy"] != "budget":
        out.pop("budget", None)
    if out["policy"] != "confident-skip":
        out.pop("skip_below", None)
    return validate_policy(out)


def round_policy(rnd: Round) -> dict:
    """The round's crowd policy (its bookkeeping of images and scores left out)."""
    return {k: v for k, v in (rnd.policy or {"policy": "all"}).items() if k in ("policy", "budget", "skip_below")}


def describe(policy: dict) -> str:
    """One line for the rounds page."""
    name = policy.get("policy", "all")
    if name == "budget":
        return f"budget: the {policy['budget']} most uncertain crops go to the crowd"
    if name == "confident-skip":
        return f"confident-skip: crops with uncertainty under {policy['skip_below']:.2f} skip the crowd"
    return "all: every crop goes to the crowd"


def _started(session: Session, crop_ids: list[int]) -> set[int]:
    """Crops someone leased or submitted (whatever the policy, their work is kept)."""
    if not crop_ids:
        return set()
    return set(session.scalars(select(Assignment.crop_id).where(Assignment.crop_id.in_(crop_ids)).distinct()))


def skip_crowd(session: Session, store: BlobStore, crop: Crop) -> bool:
    """Fuse an untouched crop to its prediction (conditional: False when it was taken meanwhile)."""
    key = labels_io.fused_key(crop.id, crop.generation)
    labels_io.put_labels(store, key, labels_io.get_labels(store, crop.key))
    done = session.execute(
        update(Crop).where(Crop.id == crop.id, Crop.status.in_(("held", "open")), Crop.generation == 0,
                           ~select(Assignment.id).where(Assignment.crop_id == crop.id).exists())
        .values(status="fused", fused_key=key, source="model")
        .execution_options(synchronize_session=False)).rowcount
    session.expire(crop)
    return bool(done)


def apply_to_new_crops(session: Session, store: BlobStore, rnd: Round, crops: list[Crop]) -> int:
    """Apply the round's policy to an image's freshly cut crops; returns how many skip the crowd.
    Under ``budget`` they wait (``held``) for :func:`allocate_round`."""
    policy = round_policy(rnd)
    fresh = [c for c in crops if not c.is_gold and c.status == "open" and c.generation == 0]
    started = _started(session, [c.id for c in fresh])
    fresh = [c for c in fresh if c.id not in started]
    if policy["policy"] == "budget":
        for crop in fresh:
            crop.status = "held"
        session.flush()
        return 0
    if policy["policy"] == "confident-skip":
        skipped = 0
        for crop in fresh:
            if crop.uncertainty is not None and crop.uncertainty < policy["skip_below"]:
                skipped += skip_crowd(session, store, crop)
        return skipped
    return 0


def round_images(session: Session, rnd: Round) -> list[int]:
    return list((rnd.policy or {}).get("images") or [])


def all_cut(session: Session, rnd: Round) -> bool:
    """Every image the round took has its crops."""
    wanted = set(round_images(session, rnd))
    cut = set(session.scalars(select(Crop.image_id).where(Crop.round_id == rnd.id).distinct()))
    return bool(wanted) and wanted <= cut


def allocate_round(session: Session, store: BlobStore, round_id: int) -> dict:
    """Under ``budget``, once every image is cut: open the most uncertain held crops up to the
    budget (crops already with the crowd count against it), fuse the rest to the prediction.
    Idempotent; concurrent callers serialise on the round's row. Returns the image ids whose
    crops are now all fused (their stitch is due)."""
    session.flush()  # pending changes first: the locked read below reloads the round
    rnd = session.get(Round, round_id, with_for_update=True, populate_existing=True)
    policy = round_policy(rnd)
    held = list(session.scalars(select(Crop).where(Crop.round_id == rnd.id, Crop.status == "held")))
    if not held or not all_cut(session, rnd):
        return {"opened": 0, "skipped": 0, "images": []}
    budget = policy.get("budget") if policy["policy"] == "budget" else None
    opened = skipped = 0
    if budget is None:  # the policy changed since: apply the current one to what waits
        for crop in held:
            crop.status = "open"
        session.flush()
        skipped = apply_to_new_crops(session, store, rnd, held)
        opened = len(held) - skipped
    else:
        with_crowd = session.scalar(select(func.count(Crop.id)).where(
            Crop.round_id == rnd.id, Crop.is_gold.is_(False), Crop.source == "crowd",
            Crop.status.in_(("open", "fused")))) or 0
        room = max(0, budget - with_crowd)
        ranked = sorted(held, key=lambda c: (-(c.expected_fixes if c.expected_fixes is not None else float("inf")),
                                             c.id))
        for crop in ranked[:room]:
            crop.status = "open"
            opened += 1
        session.flush()
        for crop in ranked[room:]:
            skipped += skip_crowd(session, store, crop)
    images = sorted({c.image_id for c in held})
    return {"opened": opened, "skipped": skipped, "images": images}


def change_round_policy(session: Session, store: BlobStore, rnd: Round, policy: dict) -> dict:
    """Switch an open round's policy: crops nobody has started follow the new one; leases,
    submissions and fused crops are kept."""
    if rnd.status != "open":
        raise UserError(f"round {rnd.number} is closed; its policy can no longer change")
    kept = {k: v for k, v in (rnd.policy or {}).items() if k not in ("policy", "budget", "skip_below")}
    rnd.policy = {**kept, **policy}
    waiting = list(session.scalars(select(Crop).where(Crop.round_id == rnd.id, Crop.is_gold.is_(False),
                                                      Crop.status.in_(("held", "open")))))
    started = _started(session, [c.id for c in waiting])
    untouched = [c for c in waiting if c.id not in started and c.generation == 0]
    for crop in untouched:
        crop.status = "open"
    session.flush()
    skipped = apply_to_new_crops(session, store, rnd, untouched)
    result = allocate_round(session, store, rnd.id) if policy["policy"] == "budget" else {"images": []}
    fused_images = sorted({c.image_id for c in untouched} | set(result["images"]))
    return {"skipped": skipped + result.get("skipped", 0), "opened": result.get("opened", 0),
            "images": fused_images}


def project_policy(project: Project) -> dict:
    return dict(project.crowd_policy or {"policy": "all"})


def label_sources(session: Session, image_ids: list[int]) -> dict[str, dict]:
    """Where each approved image's labels came from, for the dataset: per image (id as text), its
    crops in the round it was approved in, by source (``crowd``, ``model``: unchecked by the
    crowd, ``gold``: expert labels) and the round number. The reviewer approved all of them."""
    from backend.models import Stitch

    out: dict[str, dict] = {}
    for image_id in image_ids:
        stitch = session.scalar(select(Stitch).where(Stitch.image_id == image_id, Stitch.status == "approved")
                                .order_by(Stitch.id.desc()).limit(1))
        if stitch is None:
            continue
        counts = {"crowd": 0, "model": 0, "gold": 0}
        for crop in session.scalars(select(Crop).where(Crop.image_id == image_id, Crop.round_id == stitch.round_id)):
            counts["gold" if crop.is_gold else crop.source] += 1
        out[str(image_id)] = {"round": session.get(Round, stitch.round_id).number, "crops": counts}
    return out

