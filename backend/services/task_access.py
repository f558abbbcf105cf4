"""Who may do what with a crop: the checks behind every token-bearing crowd request.

A task token (:mod:`backend.services.tokens`) names a crop and, unless it is an MTurk preview,
an assignment; it is valid only while it is the assignment's newest token (opening the task
again retires the old one). Writes also need a live, unsubmitted lease.

Two ways in, one set of rules (:func:`_check_target`):

* :func:`authorise` for requests that change a task (revisions, tools, submit): ORM rows in
  the request's session, loaded together with the newest revision by :func:`preload_task`.
* :func:`load_crop_read` + :func:`check_read` for the hot read requests (a crop's channels and
  labels): one Core query (:meth:`Database.read`), no ORM objects, no transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from backend.db import Database
from backend.errors import ConflictError, ForbiddenError, NotFoundError, UnauthorizedError
from backend.models import Assignment, Crop, Image, LabelRevision, Project, utcnow
from backend.services.tokens import TokenClaims, token_hash, verify_token


@dataclass
class TaskAccess:
    """A checked token with its crop and assignment (ORM rows of the request's session).

    ``newest``: the assignment's newest revision as ``(blob key, number)`` when it was loaded
    with the rows (None: not loaded; ask :func:`backend.services.tasks.newest_labels_ref`).
    """

    claims: TokenClaims
    crop: Crop
    assignment: Assignment | None
    newest: tuple[str, int] | None = None

    @property
    def read_only(self) -> bool:
        return self.assignment is None or self.assignment.status != "leased"


def _check_target(claims: TokenClaims, token: str, crop_id: int, assignment_found: bool,
                  assignment_crop_id: int | None, assignment_token_hash: str | None) -> None:
    """403 when the token names another crop or task; 401 when it was replaced by a newer one."""
    if claims.crop_id != crop_id:
        raise ForbiddenError("this token belongs to another crop")
    if claims.assignment_id is not None:
        if not assignment_found or assignment_crop_id != crop_id:
            raise ForbiddenError("this token belongs to another task")
        if assignment_token_hash != token_hash(token):
            raise UnauthorizedError("this token was replaced by a newer one (the task was opened again)")


def authorise(session: Session, token: str, crop_id: int, *, secret: str, ttl_s: int,
              write: bool = False, now: datetime | None = None, claims: TokenClaims | None = None,
              newest: tuple[str, int] | None = None) -> TaskAccess:
    """Check a bearer token against the crop it is used on. 401: bad token; 403: wrong crop or
    a write with a read-only (preview or finished) task; 409: the lease has expired.

    ``claims``: the token's claims when the caller has just verified it (saves a verification);
    ``newest``: the newest revision when the caller preloaded it (kept on the result).
    """
    now = now or utcnow()
    claims = claims or verify_token(secret, token, ttl_s)
    if claims.crop_id != crop_id:
        raise ForbiddenError("this token belongs to another crop")
    crop = session.get(Crop, crop_id)
    if crop is None:
        raise NotFoundError(f"no crop with id {crop_id}")
    assignment = session.get(Assignment, claims.assignment_id) if claims.assignment_id is not None else None
    _check_target(claims, token, crop_id, assignment is not None,
                  assignment.crop_id if assignment else None, assignment.token_hash if assignment else None)
    if write:
        if assignment is None:
            raise ForbiddenError("this is a read-only preview; accept the task to edit")
        if assignment.status == "submitted":
            raise ConflictError("this task is already submitted")
        if assignment.status != "leased" or assignment.lease_expires_at < now:
            raise ConflictError("the lease on this task has expired; open the task link again")
    return TaskAccess(claims=claims, crop=crop, assignment=assignment,
                      newest=newest if assignment is not None else None)


def _newest_revision(column):
    """Correlated scalar subquery: ``column`` of the assignment's newest revision (NULL: none)."""
    return (select(column).where(LabelRevision.assignment_id == Assignment.id)
            .order_by(LabelRevision.number.desc()).limit(1).correlate(Assignment).scalar_subquery())


_NEWEST_KEY = _newest_revision(LabelRevision.key).label("newest_key")
_NEWEST_NUMBER = _newest_revision(LabelRevision.number).label("newest_number")
_PRELOAD = (
    select(Crop, Image, Project)
    .join(Image, Image.id == Crop.image_id)
    .join(Project, Project.id == Image.project_id)
    .where(Crop.id == bindparam("crop_id"))
)
_PRELOAD_WITH_ASSIGNMENT = _PRELOAD.add_columns(Assignment, _NEWEST_KEY, _NEWEST_NUMBER).outerjoin(
    Assignment, Assignment.id == bindparam("assignment_id")
)


def preload_task(session: Session, crop_id: int, assignment_id: int | None) -> tuple | None:
    """Load a crop, its image and project, and an assignment into ``session`` in one query.

    While the caller holds the returned tuple (the session's identity map keeps only weak
    references), later ``session.get`` calls for these rows, as in :func:`authorise`, cost no
    query. (The statements are built once: on the crowd's hot path, building them cost more
    than running them.)

    Parameters
    ----------
    session : Session
    crop_id : int
        The crop named by a task token.
    assignment_id : int or None
        The token's assignment (None for a preview token).

    Returns
    -------
    tuple or None
        ``(Crop, Image, Project)``, plus, when ``assignment_id`` is given, the ``Assignment`` (or
        None when it does not exist) and its newest revision ``(key, number)`` (or None when it
        has none); None when there is no such crop.
    """
    if assignment_id is None:
        row = session.execute(_PRELOAD, {"crop_id": crop_id}).first()
        return tuple(row) if row is not None else None
    row = session.execute(_PRELOAD_WITH_ASSIGNMENT, {"crop_id": crop_id, "assignment_id": assignment_id}).first()
    if row is None:
        return None
    crop, image, project, assignment, key, number = row
    return crop, image, project, assignment, (key, number) if key is not None else None


# --- the read path ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CropRead:
    """What a read of a task's crop needs, checked against its token.

    Attributes
    ----------
    crop_id : int
    key : str
        The blob of the crop's channels and predicted labels (its current generation).
    window : (y0, x0, y1, x1)
        Where the crop lies in its image.
    labels_key : str
        The task's newest labels: its newest revision's blob, or ``key`` (the prediction).
    revision : int
        That revision's number (0: the prediction).
    """

    crop_id: int
    key: str
    window: tuple[int, int, int, int]
    labels_key: str
    revision: int


_READ = (
    select(Crop.id, Crop.key, Crop.y0, Crop.x0, Crop.y1, Crop.x1, Project.frame_ancestors,
           Assignment.id.label("assignment_id"), Assignment.crop_id.label("assignment_crop_id"),
           Assignment.token_hash, _NEWEST_KEY, _NEWEST_NUMBER)
    .select_from(Crop)
    .join(Image, Image.id == Crop.image_id)
    .join(Project, Project.id == Image.project_id)
    .outerjoin(Assignment, Assignment.id == bindparam("assignment_id"))
    .where(Crop.id == bindparam("crop_id"))
)


def load_crop_read(db: Database, claims: TokenClaims):
    """The row :func:`check_read` checks (crop, project allowlist, assignment, newest revision)
    for the crop and assignment a verified token names, or None when the crop does not exist.
    Its ``frame_ancestors`` are the project's, for the response's headers even when the check
    fails."""
    return db.read(_READ, {"crop_id": claims.crop_id, "assignment_id": claims.assignment_id})


def check_read(row, claims: TokenClaims, token: str, crop_id: int) -> CropRead:
    """Check a verified token for reading crop ``crop_id`` (the rules of :func:`authorise`
    without ``write``) with the row :func:`load_crop_read` returned. 403/401/404 otherwise."""
    if claims.crop_id == crop_id and row is None:
        raise NotFoundError(f"no crop with id {crop_id}")
    _check_target(claims, token, crop_id, row is not None and row.assignment_id is not None,
                  row.assignment_crop_id if row is not None else None, row.token_hash if row is not None else None)
    newest = (row.newest_key, row.newest_number) if claims.assignment_id is not None and row.newest_key else None
    return CropRead(crop_id=row.id, key=row.key, window=(row.y0, row.x0, row.y1, row.x1),
                    labels_key=newest[0] if newest else row.key, revision=newest[1] if newest else 0)
