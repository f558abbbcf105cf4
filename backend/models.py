"""ORM entities (SQLAlchemy 2.0 typed mappings).

Times are naive UTC (``utcnow()``), the same on SQLite and PostgreSQL. Arrays never live in the
database: rows hold the storage keys of the arrays (see ARCHITECTURE.md, "The loop as data").
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

FEATURES = ("whole_cell", "nuclear")
PLATFORMS = ("generic", "prolific", "appen", "mturk")
ROLES = ("admin", "reviewer")

# Image.status values, in the order an image moves through a round.
IMAGE_STATUSES = (
    "uploaded",
    "predicted",
    "cropped",
    "in_crowd",
    "stitched",
    "in_review",
    "approved",
    "rejected",
)
JOB_STATUSES = ("queued", "running", "finished", "failed")
MODEL_STATUSES = ("training", "ready", "promoted", "failed", "retired")


def utcnow() -> datetime:
    """Naive UTC now (what every DateTime column holds)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """An expert reviewer or a lab admin (crowd annotators are not users: see Annotator)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Every session cookie carries the generation it was issued under; a session whose number
    # differs from this one is over. Logout, a new password, a role change and a block bump it.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @validates("password_hash", "role", "active")
    def _end_sessions_on_change(self, key: str, value):
        """A new password, role or active flag on a stored user ends all of its sessions.

        The bump is ``session_generation + 1`` in SQL (two changes racing both count), and it
        happens however the attribute is set (services, the demo, a shell).
        """
        if self.id is not None and (key not in self.__dict__ or self.__dict__[key] != value):
            self.session_generation = User.session_generation + 1
        return value


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # [{"name": "DAPI", "color": "#0000ff"}, ...] in channel order
    channels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    features: Mapped[list[Any]] = mapped_column(JSON, default=lambda: list(FEATURES))
    crop_size: Mapped[int] = mapped_column(Integer, default=270)
    overlap: Mapped[int] = mapped_column(Integer, default=27)
    annotators_per_crop: Mapped[int] = mapped_column(Integer, default=3)
    quorum: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)  # None: majority
    gold_fraction: Mapped[float] = mapped_column(Float, default=0.1)
    platform: Mapped[str] = mapped_column(String(16), default="generic")
    platform_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    frame_ancestors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    instructions: Mapped[str] = mapped_column(Text, default="")
    retrain_min_images: Mapped[int] = mapped_column(Integer, default=10)
    retrain_every_hours: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    auto_promote: Mapped[bool] = mapped_column(Boolean, default=True)
    # µm per pixel of the project's images (None: unknown; each image may override it)
    pixel_size_um: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    # what predicts before any version is promoted: {"predictor": "generalist"|"baseline",
    # "f1": {...}, "images": n, "measured_on": "ground truth"|"approved"|"none"}
    predictor_choice: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    # which crops go to the crowd (backend.services.crowd_policy): None is "all"
    crowd_policy: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    images: Mapped[list["Image"]] = relationship(back_populates="project", order_by="Image.id")

    @property
    def channel_names(self) -> list[str]:
        return [c["name"] for c in self.channels]


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    n_channels: Mapped[int] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(16))
    channel_names: Mapped[list[Any]] = mapped_column(JSON, default=list)
    display_range: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[lo, hi], ...] per channel
    raw_key: Mapped[str] = mapped_column(String(255))
    ground_truth_key: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    # µm per pixel (from OME-TIFF/TIFF metadata or set by an admin); None: the project's
    pixel_size_um: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    labels_key: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)  # current labels
    status: Mapped[str] = mapped_column(String(16), default="uploaded")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    project: Mapped[Project] = relationship(back_populates="images")


class Round(Base):
    """One pass of the loop over a project: predict → crop → crowd → stitch → review."""

    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("project_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    model_version_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    # what predicted the round: "model vN", "generalist" or "baseline" (set by the predict job)
    predictor: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    # the crowd policy of this round and the images it takes (backend.services.crowd_policy)
    policy: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    closed_at: Mapped[Optional[datetime]] = mapped_column(DateTime, nullable=True)


class Crop(Base):
    __tablename__ = "crops"
    __table_args__ = (UniqueConstraint("image_id", "round_id", "index"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)  # position in the crop plan (row-major)
    y0: Mapped[int] = mapped_column(Integer)
    x0: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    x1: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(255))  # crops/<id>.npz: channels + predicted labels
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_key: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # held | open | fused
    # how sure the prediction is (backend.services.crowd_policy): cells likely to need a fix, and
    # that per cell of the crop (0..1); None before scoring
    uncertainty: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    expected_fixes: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    # where its fused labels come from: "crowd" (submissions; gold crops: their gold labels) or
    # "model" (the prediction, unchecked: the round's policy skipped the crowd)
    source: Mapped[str] = mapped_column(String(8), default="crowd", server_default="crowd")
    fused_key: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    reopen_reason: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)  # bumped when a review reopens it
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Annotator(Base):
    """A crowd worker as the platform names them; only an identifier, never trusted for more."""

    __tablename__ = "annotators"
    __table_args__ = (UniqueConstraint("project_id", "platform", "worker_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    worker_id: Mapped[str] = mapped_column(String(128))
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Assignment(Base):
    """A lease of one crop to one annotator; its saves are LabelRevisions."""

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_crop_status", "crop_id", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    crop_id: Mapped[int] = mapped_column(ForeignKey("crops.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_worker_id: Mapped[str] = mapped_column(String(128))
    platform_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    token_hash: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime] = mapped_column(DateTime)
    # leased | submitted | expired | dropped
    status: Mapped[str] = mapped_column(String(16), default="leased")
    generation: Mapped[int] = mapped_column(Integer, default=0)  # the crop generation it was made for
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    submitted_at: Mapped[Optional[datetime]] = mapped_column(DateTime, nullable=True)
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    edit_count: Mapped[int] = mapped_column(Integer, default=0)
    completion_code: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    agreement: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    gold_score: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    # share of what the crop's starting labels got wrong that the submission fixed (gold crops;
    # None: the start was already nearly perfect); see backend.core.crowd_simulation.gold_gain
    gold_gain: Mapped[Optional[float]] = mapped_column(Float, nullable=True)


class LabelRevision(Base):
    """One saved state of labels: of an assignment's crop, or of a stitched image under review."""

    __tablename__ = "label_revisions"
    __table_args__ = (
        UniqueConstraint("assignment_id", "number"),
        UniqueConstraint("stitch_id", "number"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), nullable=True, index=True
    )
    stitch_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("stitches.id", ondelete="CASCADE"), nullable=True, index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(255))
    author: Mapped[str] = mapped_column(String(128), default="")
    changed_pixels: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Stitch(Base):
    """The fused crops of one image in one round, put back together."""

    __tablename__ = "stitches"
    __table_args__ = (UniqueConstraint("image_id", "round_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(255))  # stitched labels (F,H,W) int32
    conflicts_key: Mapped[str] = mapped_column(String(255))
    n_cells: Mapped[int] = mapped_column(Integer, default=0)
    n_conflict_pixels: Mapped[int] = mapped_column(Integer, default=0)
    n_changed_cells: Mapped[int] = mapped_column(Integer, default=0)  # vs what the crowd started from
    revision: Mapped[int] = mapped_column(Integer, default=0)  # review edits, optimistic concurrency
    status: Mapped[str] = mapped_column(String(16), default="in_review")  # in_review|approved|rejected
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Review(Base):
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    stitch_id: Mapped[int] = mapped_column(ForeignKey("stitches.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    decision: Mapped[str] = mapped_column(String(16))  # approved | rejected
    reason: Mapped[str] = mapped_column(Text, default="")
    crop_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("project_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    key_prefix: Mapped[str] = mapped_column(String(255))  # datasets/<id>/{train,val,test}.npz
    image_ids: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # split -> [image ids]
    n_tiles: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # split -> count
    qc: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what QC dropped
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("project_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    dataset_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), nullable=True
    )
    key: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)  # models/<id>/model.keras
    backbone: Mapped[str] = mapped_column(String(32), default="resnet50")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # post-processing calibrated on the validation split: {"feature_kwargs": {feature: {...}}}
    postprocess: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    # the scale it works at: {"nucleus_diameter": px, "mpp": µm/px or None}
    scale: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="training")
    error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    promoted_at: Mapped[Optional[datetime]] = mapped_column(DateTime, nullable=True)


class Job(Base):
    """A unit of background work and its progress, whichever queue runs it."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[Optional[str]] = mapped_column(String(64), nullable=True, index=True)
    queue_name: Mapped[str] = mapped_column(String(32), default="default")
    kind: Mapped[str] = mapped_column(String(64))  # e.g. "crop_image"
    func: Mapped[str] = mapped_column(String(128))  # dotted name, e.g. "worker.jobs.crop_image"
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    project_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    result: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime, nullable=True)
    ended_at: Mapped[Optional[datetime]] = mapped_column(DateTime, nullable=True)
