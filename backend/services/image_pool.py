"""Next images by uncertainty: a round can take, from the images waiting for annotation, the N the
serving model is least sure of.

Such a round predicts every waiting image (the predict job stores each one's uncertainty, as for
any round) and records its score: the share of its cells likely to need a correction
(:func:`worker.uncertainty.crop_scores` over the whole image). When every waiting image has one,
the N highest go on to be cut into crops; the others go back to waiting, untouched, for a later
round. Scores and choices are kept in ``Round.policy`` (``take``, ``image_scores``, ``images``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.errors import UserError
from backend.models import Image, Round


def validate_take(value, pool: int) -> int | None:
    """``images`` of a round-start request: how many of the ``pool`` waiting images to take."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise UserError(f"images must be a whole number of images to take, got {value!r}")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError("images must be a positive whole number: how many of the waiting images "
                        "the round takes, the least certain first")
    return None if value >= pool else value


def record_score(session: Session, round_id: int, image_id: int, score: float) -> list[int] | None:
    """Store one image's score; once every waiting image has one, choose the round's images.

    Returns the chosen image ids when this call completed the choice (their crops are due), an
    empty list when the choice was made before (the image is in the round only if chosen then),
    or None while scores are missing. Concurrent callers serialise on the round's row.
    """
    session.flush()  # pending changes first: the locked read below reloads the round
    rnd = session.get(Round, round_id, with_for_update=True, populate_existing=True)
    policy = dict(rnd.policy or {})
    if policy.get("chosen"):
        return []
    scores = {**policy.get("image_scores", {}), str(image_id): round(float(score), 4)}
    policy["image_scores"] = scores
    pool = [int(i) for i in policy.get("images", [])]
    if any(str(i) not in scores for i in pool):
        rnd.policy = policy
        return None
    ranked = sorted(pool, key=lambda i: (-scores[str(i)], i))
    chosen, rest = ranked[: policy["take"]], ranked[policy["take"]:]
    before = policy.get("pool_status", {})
    for image in session.scalars(select(Image).where(Image.id.in_(rest))):
        image.status = before.get(str(image.id), "uploaded")
    policy.update(images=sorted(chosen), chosen=True, left_waiting=sorted(rest))
    rnd.policy = policy
    session.flush()
    return sorted(chosen)


def is_chosen(rnd: Round, image_id: int) -> bool:
    return image_id in (rnd.policy or {}).get("images", [])
