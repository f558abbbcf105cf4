"""Image import: validate uploaded files, store raw arrays, create Image rows — all or nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.core.imaging import (
    DecodedImage,
    DecodedTooLargeError,
    ImageImportError,
    channels_to_uint8,
    decode_images,
    display_range,
    safe_filename,
)
from backend.errors import ConflictError, NotFoundError, UserError
from backend.models import Image, Project
from backend.services.projects import pixel_size_value
from backend.storage import BlobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """One file as received: its client-side name and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class ImportLimits:
    max_pixels: int = 20000 * 20000
    max_channels: int = 64
    max_decoded_bytes: int = 2048 * 1024 * 1024  # all files of one import together (MAX_DECODED_MB)

    @classmethod
    def from_settings(cls, settings) -> "ImportLimits":
        return cls(max_pixels=settings.max_image_pixels, max_channels=settings.max_channels,
                   max_decoded_bytes=settings.max_decoded_mb * 1024 * 1024)


def parse_channel_map(spec: str | list | None) -> list[int | str] | None:
    """``"0,2,5"`` or ``"DAPI,CD45"`` (or a list) → which source channels feed the project's."""
    if spec in (None, "", []):
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[int | str] = []
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            out.append(int(item))
        elif isinstance(item, str) and item:
            out.append(item)
        else:
            raise UserError(f"channel map entry {item!r} is neither an index nor a name", field="channels")
    return out


def map_channels(decoded: DecodedImage, project: Project, channel_map: list | None) -> DecodedImage:
    """Select/reorder the decoded channels to the project's channel order, or explain why not."""
    n_project = len(project.channels)
    n_file = decoded.pixels.shape[0]
    if channel_map is None:
        if n_file == n_project:
            return decoded
        raise ImageImportError(
            f"{decoded.name} has {n_file} channel(s) ({', '.join(decoded.channel_names)}) but project "
            f"{project.name!r} has {n_project} ({', '.join(project.channel_names)}); "
            "pass a channel map naming which file channels to use, in the project's order"
        )
    if len(channel_map) != n_project:
        raise ImageImportError(
            f"the channel map names {len(channel_map)} channel(s) but project {project.name!r} has {n_project}"
        )
    picks = []
    for item in channel_map:
        if isinstance(item, int):
            if not 0 <= item < n_file:
                raise ImageImportError(f"{decoded.name}: channel index {item} is out of range 0..{n_file - 1}")
            picks.append(item)
        else:
            if item not in decoded.channel_names:
                raise ImageImportError(
                    f"{decoded.name} has no channel named {item!r} (it has {', '.join(decoded.channel_names)})"
                )
            picks.append(decoded.channel_names.index(item))
    return DecodedImage(
        name=decoded.name,
        pixels=np.ascontiguousarray(decoded.pixels[picks]),
        channel_names=[decoded.channel_names[i] for i in picks],
        labels=decoded.labels,
        pixel_size_um=decoded.pixel_size_um,
    )


def decode_uploads(
    uploads: list[Upload], project: Project, limits: ImportLimits, channel_map: list | None = None
) -> list[DecodedImage]:
    """Decode and check every upload before anything is stored; raises on the first bad file.

    The decoded arrays of all files together stay within ``limits.max_decoded_bytes``: each file is
    checked from its header against what the files before it left (413 naming the file).
    """
    if not uploads:
        raise UserError("no files were sent; attach one or more image files", field="files")
    decoded: list[DecodedImage] = []
    used = 0
    for upload in uploads:
        name = safe_filename(upload.filename)
        try:
            images = decode_images(upload.data, name, max_pixels=limits.max_pixels,
                                   max_channels=limits.max_channels,
                                   max_decoded_bytes=limits.max_decoded_bytes - used)
        except DecodedTooLargeError as exc:
            raise DecodedTooLargeError(_decoded_limit_message(str(exc), used, limits.max_decoded_bytes)) from None
        for image in images:
            used += image.pixels.nbytes + (image.labels.nbytes if image.labels is not None else 0)
            decoded.append(map_channels(image, project, channel_map))
    return decoded


def _decoded_limit_message(message: str, used: int, limit: int) -> str:
    """The reader's 413, naming the setting, and the share of the limit earlier files took."""
    shared = (f"; the files before it in this upload took {used / 2**20:,.0f} of the {limit / 2**20:,.0f} MB "
              "that one upload may decode to: upload it on its own") if used else ""
    return f"{message.rstrip('.')}{shared} (MAX_DECODED_MB)."


def import_images(
    session: Session,
    store: BlobStore,
    project: Project,
    uploads: list[Upload],
    limits: ImportLimits = ImportLimits(),
    channel_map: list | None = None,
    skip_existing: bool = False,
) -> list[Image]:
    """Import files into ``project``: all of them, or — on any error — none.

    Every file is decoded and validated first; then rows are flushed (for their ids) and the raw
    arrays written. If anything fails, the keys written so far are deleted and the exception
    propagates, so the caller's session rolls back and storage is as before.

    Storage layout: ``images/<id>/raw.npy`` (C,H,W) original dtype; ``images/<id>/ground_truth.npz``
    with ``labels`` (2,H,W) int32 when the file carried labels. Each image keeps the pixel size
    its file declares in ``Image.pixel_size_um`` (None: unknown, so the project's applies).
    """
    decoded = decode_uploads(uploads, project, limits, channel_map)
    names = [d.name for d in decoded]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConflictError(f"the file {dup!r} was sent twice", field="files")
    existing = set(
        session.scalars(select(Image.name).where(Image.project_id == project.id, Image.name.in_(names)))
    )
    if existing and not skip_existing:
        raise ConflictError(
            f"project {project.name!r} already has an image named {sorted(existing)[0]!r}; "
            "rename the file or delete the old image",
            field="files",
        )
    written: list[str] = []
    images: list[Image] = []
    project_name = project.name
    try:
        for d in decoded:
            if d.name in existing:
                continue
            c, h, w = d.pixels.shape
            image = Image(
                project_id=project.id,
                name=d.name,
                height=int(h),
                width=int(w),
                n_channels=int(c),
                dtype=str(d.pixels.dtype),
                channel_names=list(d.channel_names),
                display_range=display_range(d.pixels).tolist(),
                raw_key="",
                pixel_size_um=d.pixel_size_um,
                status="uploaded",
            )
            session.add(image)
            session.flush()
            image.raw_key = f"images/{image.id}/raw.npy"
            store.put_array(image.raw_key, d.pixels)
            written.append(image.raw_key)
            if d.labels is not None:
                image.ground_truth_key = f"images/{image.id}/ground_truth.npz"
                store.put_arrays(image.ground_truth_key, labels=d.labels.astype(np.int32))
                written.append(image.ground_truth_key)
            images.append(image)
        session.flush()
    except BaseException as exc:
        for key in written:
            try:
                store.delete(key)
            except Exception:  # pragma: no cover - best effort cleanup, logged
                log.exception("could not remove %s after a failed import", key)
        if isinstance(exc, IntegrityError):  # a concurrent import added one of these names first
            raise ConflictError(
                f"project {project_name!r} got an image of one of these names at the same time; "
                "nothing was imported: reload to see it", field="files") from None
        raise
    return images


def get_image(session: Session, image_id: int, project_id: int | None = None) -> Image:
    image = session.get(Image, image_id)
    if image is None or (project_id is not None and image.project_id != project_id):
        raise NotFoundError(f"no image with id {image_id}" + (f" in project {project_id}" if project_id else ""))
    return image


def effective_pixel_size(image: Image) -> tuple[float | None, str]:
    """(µm per pixel that predicting uses, where it comes from): ``"image"`` (from the file or set
    by an admin), ``"project"`` (the project's default) or ``"unknown"`` (size is estimated)."""
    if image.pixel_size_um is not None:
        return image.pixel_size_um, "image"
    if image.project.pixel_size_um is not None:
        return image.project.pixel_size_um, "project"
    return None, "unknown"


def set_pixel_size(session: Session, project_id: int, image_id: int, value) -> Image:
    """Set (a number in 0.01–100 µm) or clear (None: the project's applies) an image's pixel size.

    Raises NotFoundError for an image not in the project, UserError naming ``pixel_size_um``.
    """
    image = get_image(session, image_id, project_id)
    image.pixel_size_um = pixel_size_value(value)
    session.flush()
    return image


def image_dict(image: Image) -> dict:
    effective, source = effective_pixel_size(image)
    return {
        "id": image.id,
        "project_id": image.project_id,
        "name": image.name,
        "height": image.height,
        "width": image.width,
        "n_channels": image.n_channels,
        "dtype": image.dtype,
        "channel_names": image.channel_names,
        "display_range": image.display_range,
        "status": image.status,
        "has_ground_truth": image.ground_truth_key is not None,
        "pixel_size_um": image.pixel_size_um,
        "effective_pixel_size_um": effective,
        "pixel_size_source": source,
        "created_at": image.created_at.isoformat() + "Z",
    }


def image_thumbnail(store: BlobStore, image: Image, colours: list[str], size: int = 256) -> bytes:
    """A PNG composite of the image's channels (additive colours), at most ``size`` px wide."""
    from io import BytesIO

    from PIL import Image as PILImage

    raw = store.get_array(image.raw_key)
    step = max(1, int(np.ceil(max(image.height, image.width) / size)))
    small = raw[:, ::step, ::step]
    u8 = channels_to_uint8(small, np.asarray(image.display_range, dtype=np.float64))
    rgb = np.zeros(u8.shape[1:] + (3,), dtype=np.float32)
    for i, channel in enumerate(u8):
        hexcol = colours[i % len(colours)] if colours else "#ffffff"
        colour = np.array([int(hexcol[j : j + 2], 16) for j in (1, 3, 5)], dtype=np.float32) / 255.0
        rgb += channel[..., None].astype(np.float32) * colour
    buf = BytesIO()
    PILImage.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
