"""Approved images → a versioned training set (TissueNet layout), with QC and an 80/10/10 split."""

from __future__ import annotations

import hashlib

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.core.labels import image_passes_qc, remove_small_objects_labels
from backend.services.crowd_policy import label_sources
from backend.core.tiling import crop_plan
from backend.errors import UserError
from backend.models import DatasetVersion, Image, Project
from backend.services import labels_io
from backend.storage import BlobStore

TILE = 256
SPLITS = ("train", "val", "test")
MIN_CELL_PX = 15
MIN_CELLS = 20


def split_of(image_id: int, seed: str = "looplabel") -> str:
    """The split an image belongs to, fixed for life (80/10/10 by a hash of its id).

    Fixed per image so that an image tested on in one version is never trained on in the next.
    """
    h = int(hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 80 else ("val" if h < 90 else "test")


def assign_splits(image_ids: list[int]) -> dict[str, list[int]]:
    """80/10/10 by hash; with three or more images, val and test get at least one each."""
    splits = {s: [] for s in SPLITS}
    for i in sorted(image_ids):
        splits[split_of(i)].append(i)
    for needed in ("test", "val"):
        if len(image_ids) >= 3 and not splits[needed] and len(splits["train"]) > 1:
            # deterministic: the train image with the highest id moves
            splits[needed].append(splits["train"].pop())
    return splits


def tiles(array: np.ndarray, tile: int = TILE) -> list[np.ndarray]:
    """(…,H,W) → tiles of (…,tile,tile), edge-aligned; smaller images are zero-padded."""
    h, w = array.shape[-2:]
    if h < tile or w < tile:
        pad = [(0, 0)] * (array.ndim - 2) + [(0, max(0, tile - h)), (0, max(0, tile - w))]
        array = np.pad(array, pad)
        h, w = array.shape[-2:]
    return [array[..., win.y0:win.y1, win.x0:win.x1] for win in crop_plan((h, w), tile, 0)]


def approved_images(session: Session, project_id: int) -> list[Image]:
    return list(
        session.scalars(
            select(Image).where(Image.project_id == project_id, Image.status == "approved", Image.labels_key.isnot(None))
            .order_by(Image.id)
        )
    )


def build_dataset(session: Session, store: BlobStore, project_id: int, progress=None) -> DatasetVersion:
    """Build the next DatasetVersion from the project's approved images.

    QC: cells under 15 px are dropped, then images with fewer than 20 cells. Each image is cut
    into 256×256 tiles; ``datasets/<id>/<split>.npz`` holds ``X`` (N,256,256,C) float32 and ``y``
    (N,256,256,2) int32 (whole-cell, nuclear). The held-out splits (val, test) also hold
    ``y_judge``: the labels model versions are judged by — the image's uploaded ground truth when
    it labels every feature the project measures, else its approved labels — and ``ground_truth``
    (N,) bool, which tiles are ground truth. Arrays are written before the row is committed.
    """
    project = session.get(Project, project_id)
    images = approved_images(session, project_id)
    if not images:
        raise UserError(f"project {project.name!r} has no approved images to build a dataset from")
    kept, dropped = [], []
    labels_by_id = {}
    for n, image in enumerate(images):
        labels = labels_io.get_labels(store, image.labels_key)
        labels = np.stack([remove_small_objects_labels(labels[f], MIN_CELL_PX) for f in range(2)])
        if image_passes_qc(labels[0], MIN_CELLS):
            kept.append(image.id)
            labels_by_id[image.id] = labels
        else:
            dropped.append(image.id)
        if progress:
            progress(0.5 * (n + 1) / len(images), f"QC {n + 1}/{len(images)}")
    if not kept:
        raise UserError(f"no approved image of project {project.name!r} passes QC (≥ {MIN_CELLS} cells)")
    version = (session.scalar(select(func.max(DatasetVersion.version)).where(DatasetVersion.project_id == project_id)) or 0) + 1
    ds = DatasetVersion(project_id=project_id, version=version, key_prefix="")
    session.add(ds)
    session.flush()
    ds.key_prefix = f"datasets/{ds.id}"
    splits = assign_splits(kept)
    n_tiles = {}
    by_id = {i.id: i for i in images}
    features = list(project.features or ["whole_cell", "nuclear"])
    for s_index, split in enumerate(SPLITS):
        xs, ys, judge, is_truth = [], [], [], []
        for image_id in splits[split]:
            raw = store.get_array(by_id[image_id].raw_key).astype(np.float32)
            xs += [np.moveaxis(t, 0, -1) for t in tiles(raw)]
            ys += [np.moveaxis(t, 0, -1) for t in tiles(labels_by_id[image_id])]
            if split != "train":
                truth = judging_truth(store, by_id[image_id], features)
                source = labels_by_id[image_id] if truth is None else truth
                judged = [np.moveaxis(t, 0, -1) for t in tiles(source)]
                judge += judged
                is_truth += [truth is not None] * len(judged)
        c = images[0].n_channels
        X = np.stack(xs).astype(np.float32) if xs else np.zeros((0, TILE, TILE, c), np.float32)
        y = np.stack(ys).astype(np.int32) if ys else np.zeros((0, TILE, TILE, 2), np.int32)
        extra = {}
        if split != "train":
            extra = {"y_judge": np.stack(judge).astype(np.int32) if judge else np.zeros_like(y),
                     "ground_truth": np.asarray(is_truth, dtype=bool)}
        store.put_arrays(f"{ds.key_prefix}/{split}.npz", X=X, y=y, **extra)
        n_tiles[split] = int(X.shape[0])
        # no progress rows from here on: this session holds the write lock (SQLite would deadlock)
    ds.image_ids = splits
    ds.n_tiles = n_tiles
    ds.qc = {"dropped_images": dropped, "min_cell_px": MIN_CELL_PX, "min_cells": MIN_CELLS,
             "label_sources": label_sources(session, kept)}
    session.flush()
    return ds


def judging_truth(store: BlobStore, image: Image, features: list[str]) -> np.ndarray | None:
    """An image's uploaded ground truth, (2, H, W), when it labels every feature the project
    measures (whole-cell, nuclear); else None."""
    if not image.ground_truth_key:
        return None
    truth = labels_io.get_labels(store, image.ground_truth_key)
    needed = [f for f, name in enumerate(("whole_cell", "nuclear")) if name in features]
    if truth.shape != (2, image.height, image.width) or not all(truth[f].any() for f in needed):
        return None
    return truth


def tile_images(session: Session, ds: DatasetVersion, split: str) -> list[int]:
    """The image each tile of a split comes from, in the order :func:`load_split` returns them."""
    out = []
    for image_id in (ds.image_ids or {}).get(split, []):
        image = session.get(Image, image_id)
        out += [image_id] * len(crop_plan((max(image.height, TILE), max(image.width, TILE)), TILE, 0))
    return out


def drawn_by(session: Session, ds: DatasetVersion) -> dict[int, str]:
    """Which predictor drew the starting labels of each image of a dataset (``"model vN"``,
    ``"generalist"`` or ``"baseline"``): the predictor of the round the image was approved in."""
    from backend.models import Round

    rounds = {r.number: r.predictor for r in session.scalars(select(Round).where(Round.project_id == ds.project_id))}
    sources = (ds.qc or {}).get("label_sources") or {}
    return {int(i): rounds[v["round"]] for i, v in sources.items() if rounds.get(v.get("round"))}


def load_split(store: BlobStore, ds: DatasetVersion, split: str) -> tuple[np.ndarray, np.ndarray]:
    arrays = store.get_arrays(f"{ds.key_prefix}/{split}.npz")
    return arrays["X"], arrays["y"]


def load_judging_labels(store: BlobStore, ds: DatasetVersion, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels to judge by, (N,) bool: which tiles are ground truth) of a held-out split; datasets
    built before ground truth was kept for judging give their approved labels, none ground truth."""
    arrays = store.get_arrays(f"{ds.key_prefix}/{split}.npz")
    if "y_judge" in arrays:
        return arrays["y_judge"], arrays["ground_truth"].astype(bool)
    return arrays["y"], np.zeros(arrays["y"].shape[0], dtype=bool)
