"""The demo project: synthetic tissue imported through the same path as a lab's files."""

from __future__ import annotations

import io

import numpy as np
import tifffile
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.core.synthetic import synthetic_tissue
from backend.models import Project
from backend.services.images import ImportLimits, Upload, import_images
from backend.services.projects import create_project
from backend.storage import BlobStore

DEMO_NAME = "demo"


def synthetic_ome_tiff(height: int, width: int, n_channels: int, seed: int) -> tuple[bytes, list[str]]:
    """Synthetic tissue written as an OME-TIFF with channel names, as a microscope would."""
    tissue = synthetic_tissue(height, width, n_channels=n_channels, seed=seed)
    buf = io.BytesIO()
    tifffile.imwrite(
        buf,
        tissue.image,
        ome=True,
        photometric="minisblack",
        metadata={"axes": "CYX", "Channel": {"Name": list(tissue.channel_names)}},
    )
    return buf.getvalue(), list(tissue.channel_names)


def synthetic_npz(height: int, width: int, n_channels: int, seed: int) -> bytes:
    """Synthetic tissue in the TissueNet layout for one image: X (H,W,C), y (H,W,2) ground truth."""
    tissue = synthetic_tissue(height, width, n_channels=n_channels, seed=seed)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        X=np.moveaxis(tissue.image, 0, -1),
        y=np.moveaxis(tissue.labels, 0, -1),
    )
    return buf.getvalue()


def ensure_demo(
    session: Session,
    store: BlobStore,
    n_images: int = 4,
    size: int = 1024,
    n_channels: int = 3,
    limits: ImportLimits = ImportLimits(),
) -> tuple[Project, int]:
    """Create (or complete) the demo project; returns it and how many images were added.

    Idempotent: images already present are kept, missing ones are imported. The images carry
    their synthetic ground truth (TissueNet-style NPZ), so simulations can score against it.
    """
    project = session.scalar(select(Project).where(Project.name == DEMO_NAME))
    if project is None:
        names = ["DAPI", "membrane"] + [f"lineage_{i}" for i in range(1, n_channels - 1)]
        project = create_project(
            session,
            DEMO_NAME,
            names[:n_channels],
            annotators_per_crop=2,
            gold_fraction=0.1,
            instructions=(
                "Correct the outline of every cell. **Whole cell**: the membrane (green) bounds the cell. "
                "**Nuclear**: the DAPI (blue) blob inside it. Split merged cells, merge split ones, "
                "delete debris, and draw cells the model missed."
            ),
        )
    have = {i.name for i in project.images}
    uploads = []
    for k in range(n_images):
        name = f"tissue_{k + 1:02d}.npz"
        if name not in have:
            uploads.append(Upload(name, synthetic_npz(size, size, n_channels, seed=1000 + k)))
    added = import_images(session, store, project, uploads, limits) if uploads else []
    session.refresh(project)
    return project, len(added)


def ensure_demo_users(session: Session, passwords: dict[str, str | None]) -> list[tuple[str, str, str | None]]:
    """Create the demo admin and reviewer when missing.

    ``passwords`` maps "admin"/"reviewer" to a password (from the environment) or None (generate).
    Returns (username, role, password) per user; the password is None for a user that already
    existed and was not given one (it is never printed twice). A given password resets it.
    """
    from werkzeug.security import generate_password_hash

    from backend.models import User
    from backend.services.users import create_user

    out = []
    for role in ("admin", "reviewer"):
        username = f"demo-{role}"
        wanted = passwords.get(role)
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            _, password = create_user(session, username, role, wanted)
            out.append((username, role, password))
        elif wanted:
            user.password_hash = generate_password_hash(wanted)
            out.append((username, role, wanted))
        else:
            out.append((username, role, None))
    return out
