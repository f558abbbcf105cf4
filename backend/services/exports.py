"""Exports: a dataset version as one ``.npz``, an image with its labels as an OME-TIFF.

Both are written to a spooled temporary file (memory up to 64 MiB, then disk) that the caller
streams and closes, so a large dataset never has to fit in memory twice.
"""

from __future__ import annotations

import re
import tempfile
from typing import IO

import numpy as np
import tifffile
from sqlalchemy.orm import Session

from backend.errors import NotFoundError, UserError
from backend.models import DatasetVersion, Image
from backend.services import labels_io
from backend.services.datasets import SPLITS, load_split
from backend.storage import BlobStore

SPOOL_BYTES = 64 * 1024 * 1024
LABEL_SOURCES = ("current", "ground_truth")
FEATURE_NAMES = ("whole_cell", "nuclear")


class ExportFile(tempfile.SpooledTemporaryFile):
    """A spooled temporary file with a name (tifffile wants one to label its stream)."""

    name = "looplabel-export"

    def __init__(self) -> None:
        super().__init__(max_size=SPOOL_BYTES)


def get_dataset(session: Session, project_id: int, dataset_id: int) -> DatasetVersion:
    """A dataset version of the project; NotFoundError (404) otherwise."""
    ds = session.get(DatasetVersion, dataset_id)
    if ds is None or ds.project_id != project_id:
        raise NotFoundError(f"no dataset version with id {dataset_id} in project {project_id}")
    return ds


def dataset_dict(ds: DatasetVersion) -> dict:
    """A dataset version for the console: tiles and image ids per split, QC, creation time."""
    return {
        "id": ds.id, "project_id": ds.project_id, "version": ds.version, "n_tiles": ds.n_tiles,
        "image_ids": ds.image_ids, "qc": ds.qc, "created_at": ds.created_at.isoformat() + "Z",
    }


def export_filename(*parts: str | int, suffix: str) -> str:
    """A download name from parts, reduced to letters, digits, ``.``, ``_`` and ``-``."""
    stem = "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", str(p)).strip("-.") for p in parts if str(p))
    return (stem or "export") + suffix


def dataset_npz(store: BlobStore, ds: DatasetVersion, split: str | None = None) -> IO[bytes]:
    """A dataset version (or one split of it) as an uncompressed ``.npz``, TissueNet layout.

    Parameters
    ----------
    store : BlobStore
    ds : DatasetVersion
    split : {"train", "val", "test"} or None
        None: every split, concatenated in that order.

    Returns
    -------
    file object, positioned at 0
        Holds ``X`` (N,H,W,C) float32 images, ``y`` (N,H,W,2) int32 labels (whole-cell,
        nuclear) and ``split`` (N,) str: the split of each tile. The caller closes it.

    Raises
    ------
    UserError
        ``split`` is not one of the dataset's splits (field ``split``).
    """
    if split not in (None, *SPLITS):
        raise UserError(f"split must be one of {', '.join(SPLITS)} (or omitted for all), got {split!r}",
                        field="split")
    xs, ys, names = [], [], []
    for name in SPLITS if split is None else (split,):
        X, y = load_split(store, ds, name)
        xs.append(np.asarray(X, dtype=np.float32))
        ys.append(np.asarray(y, dtype=np.int32))
        names.append(np.full(X.shape[0], name, dtype="<U5"))
    out = ExportFile()
    np.savez(out, X=np.concatenate(xs), y=np.concatenate(ys), split=np.concatenate(names))
    out.seek(0)
    return out


def image_labels(store: BlobStore, image: Image, source: str = "current") -> np.ndarray:
    """The (2,H,W) int32 labels of an image to export.

    ``current``: the image's newest labels (approved, else under review or stitched, else the
    round's prediction); ``ground_truth``: the expert labels that came with the file.
    """
    if source not in LABEL_SOURCES:
        raise UserError(f"labels must be one of {', '.join(LABEL_SOURCES)}, got {source!r}", field="labels")
    key = image.labels_key if source == "current" else image.ground_truth_key
    if not key:
        what = "labels yet (start a round to predict them)" if source == "current" else "ground truth"
        raise NotFoundError(f"image {image.name!r} has no {what}")
    return labels_io.get_labels(store, key)


def image_ome_tiff(store: BlobStore, image: Image, channel_names: list[str], source: str = "current") -> IO[bytes]:
    """An image and its labels as one OME-TIFF with two images (series).

    Series 0, ``image``: the channels (C,H,W) in their original dtype, named as in the project;
    series 1, ``labels``: (2,H,W) int32, channels ``whole_cell`` and ``nuclear`` (deflate
    compressed). Two series because one OME image holds one pixel type, and labels must stay
    int32. Readers that take the first series (LoopLabel's own importer, most viewers) get the
    image with its channel names.

    Returns
    -------
    file object, positioned at 0
        The caller closes it.
    """
    labels = image_labels(store, image, source).astype(np.int32, copy=False)
    pixels = store.get_array(image.raw_key)
    if labels.shape[1:] != pixels.shape[1:]:
        raise UserError(f"the labels of {image.name!r} have shape {labels.shape[1:]} but the image "
                        f"{pixels.shape[1:]}; re-run its round")
    names = [str(n) for n in channel_names][: pixels.shape[0]]
    names += [f"channel_{i}" for i in range(len(names), pixels.shape[0])]
    out = ExportFile()
    with tifffile.TiffWriter(out, ome=True, bigtiff=pixels.nbytes + labels.nbytes > 2**31) as tif:
        tif.write(pixels, photometric="minisblack",
                  metadata={"axes": "CYX", "Name": "image", "Channel": {"Name": names}})
        tif.write(labels, photometric="minisblack", compression="zlib",
                  metadata={"axes": "CYX", "Name": "labels", "Channel": {"Name": list(FEATURE_NAMES)}})
    out.seek(0)
    return out
