"""Memory of the server's image import on decompression bombs: refused before decoding?

Builds two "bombs", small files that declare a huge image, and one ordinary image for reference:

* ``npz_bomb`` — a 2.3 MB ``.npz`` whose ``X`` is a 20000 x 20000 x 3 uint16 array of zeros
  (2,289 MB decoded: under the 400-megapixel limit, over MAX_DECODED_MB = 2048);
* ``tiff_bomb`` — a 2.4 MB zlib-tiled TIFF of the same 3 x 20000 x 20000 uint16 zeros;
* ``reference`` — a 2048 x 2048 x 3 uint16 ``.npz`` of noise (24 MB decoded), which is imported.

Each file is uploaded in a fresh Python process through the app's real upload route
(``POST /api/projects/<id>/images``, multipart, HTTP Basic admin, SQLite and a temporary storage
folder: body limit, form parsing, header checks, decoding, storing). The child reports the HTTP
status, its peak resident memory (``resource.getrusage().ru_maxrss``) before and after the request
and the peak of Python/NumPy allocations during it (``tracemalloc``), and how many images were
stored.

Goal: both bombs refused with 413, nothing stored, peak memory under 500 MB.

Prints a table and, as the last line, one JSON object. Takes about 20 s.

Usage: python bench/memory.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a plain checkout

BOMB_SHAPE = (20000, 20000, 3)  # (H, W, C): 400 megapixels, the pixel limit exactly
GOAL_PEAK_MB = 500


# --- bombs ------------------------------------------------------------------------------------
def npz_bomb(path: Path, shape: tuple[int, ...] = BOMB_SHAPE, dtype: str = "<u2", member: str = "X.npy") -> int:
    """Write an ``.npz`` whose one member ``member`` is a zeros array of ``shape`` and ``dtype``,
    deflate-compressed at the format's best ratio (~1:1000), without ever holding the array.

    A deflate stream cut with full flushes repeats itself for repeated input, so one compressed
    1 MiB block of zeros stands for all of them. Returns the file's size in bytes.
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": tuple(shape)})
    head = header.getvalue()
    raw_size = len(head) + int(np.prod(shape)) * np.dtype(dtype).itemsize
    if raw_size >= 2**32 - 1:
        raise ValueError("this writer makes no zip64 archives: keep the array under 4 GiB")
    chunk = bytes(1 << 20)
    n_chunks, tail = divmod(raw_size - len(head), len(chunk))
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    blocks = [(deflater.compress(head), 1)]  # (bytes, times) in stream order
    if n_chunks >= 3:
        first = deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
        second = deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
        third = deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
        assert second == third, "zlib's output after a full flush should repeat"
        blocks += [(first, 1), (second, n_chunks - 1)]  # the state after any full flush is the same
    else:
        blocks.append((b"".join(deflater.compress(chunk) for _ in range(n_chunks)), 1))
    blocks.append((deflater.compress(bytes(tail)) + deflater.flush(zlib.Z_FINISH), 1))
    crc = zlib.crc32(head)
    for _ in range(n_chunks):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(bytes(tail), crc)
    compressed = sum(len(b) * times for b, times in blocks)
    name = member.encode()
    stamp = (0, 33)  # DOS time 00:00:00, date 1980-01-01
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, *stamp, crc, compressed, raw_size,
                              len(name), 0) + name)
        for block, times in blocks:
            for _ in range(times):
                out.write(block)
        directory_at = out.tell()
        out.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, *stamp, crc, compressed, raw_size,
                              len(name), 0, 0, 0, 0, 0, 0) + name)
        directory_size = out.tell() - directory_at
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, directory_size, directory_at, 0))
        return out.tell()


def tiff_bomb(path: Path, shape: tuple[int, int, int] = (3, 20000, 20000), dtype: str = "uint16",
              tile: int = 2048) -> int:
    """Write a zlib-tiled TIFF of zeros of ``shape`` (C, H, W), one compressed tile repeated, without
    ever holding the image. Returns the file's size in bytes."""
    import tifffile

    zero_tile = zlib.compress(bytes(tile * tile * np.dtype(dtype).itemsize), 9)
    n_tiles = shape[0] * -(-shape[1] // tile) * -(-shape[2] // tile)
    tifffile.imwrite(path, data=(zero_tile for _ in range(n_tiles)), shape=shape, dtype=dtype,
                     tile=(tile, tile), compression="zlib", photometric="minisblack", planarconfig="separate")
    return path.stat().st_size


def reference_npz(path: Path, shape: tuple[int, int, int] = (2048, 2048, 3)) -> int:
    """An ordinary image that is imported: uint16 noise (incompressible)."""
    pixels = np.random.default_rng(0).integers(0, 4096, size=shape, dtype=np.uint16)
    np.savez_compressed(path, X=pixels)
    return path.stat().st_size


CASES = {  # name -> (file name, writer, declared decoded bytes)
    "npz_bomb": ("bomb.npz", npz_bomb, int(np.prod(BOMB_SHAPE)) * 2),
    "tiff_bomb": ("bomb.tif", tiff_bomb, int(np.prod(BOMB_SHAPE)) * 2),
    "reference": ("reference.npz", reference_npz, 2048 * 2048 * 3 * 2),
}


# --- one upload in a fresh process ---------------------------------------------------------------
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def upload_once(path: Path, workdir: Path) -> dict:
    """Upload ``path`` through the app (in this process) and measure; see the module docstring."""
    import base64
    import tracemalloc

    from backend.app import build_app
    from backend.config import Settings
    from backend.models import Image
    from backend.runtime import Runtime
    from backend.services.projects import create_project
    from backend.services.users import create_user

    settings = Settings.from_env({"LOOPLABEL_INSTANCE": str(workdir / "instance"), "SECRET_KEY": "bench",
                                  "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
                                  "STORAGE_URL": f"file://{workdir / 'storage'}"})
    rt = Runtime(settings)
    rt.db.upgrade()
    with rt.db.session() as s:
        create_user(s, "admin", "admin", "bench-password-1")
        project_id = create_project(s, "memory bench", ["c0", "c1", "c2"]).id
    client = build_app(runtime=rt).test_client()
    auth = "Basic " + base64.b64encode(b"admin:bench-password-1").decode()
    data = path.read_bytes()
    before = peak_rss_mb()
    tracemalloc.start()
    started = time.perf_counter()
    r = client.post(f"/api/projects/{project_id}/images", data={"files": (io.BytesIO(data), path.name)},
                    content_type="multipart/form-data", headers={"Authorization": auth})
    seconds = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with rt.db.session() as s:
        stored = s.query(Image).count()
    body = r.get_json(silent=True) or {}
    rt.close()
    return {"status": r.status_code, "error": body.get("error"), "stored_images": stored,
            "file_mb": round(len(data) / 2**20, 2), "rss_before_mb": round(before, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "request_alloc_peak_mb": round(traced_peak / 2**20, 1),
            "seconds": round(seconds, 2), "max_decoded_mb": settings.max_decoded_mb}


def run_child(name: str, path: Path, workdir: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, str(path), str(workdir)],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"the {name} upload failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "FILE", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(upload_once(Path(args.child[1]), Path(args.child[2]))))
        return {}
    with tempfile.TemporaryDirectory(prefix="looplabel-memory-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results = {}
        for name, (filename, writer, declared) in CASES.items():
            path = folder / filename
            writer(path)
            work = Path(tmp) / f"work-{name}"
            work.mkdir()
            results[name] = {"declared_decoded_mb": round(declared / 2**20), **run_child(name, path, work)}
    print(f"{'case':<10} {'file MB':>8} {'decoded MB':>10} {'status':>6} {'stored':>6} {'peak RSS MB':>11} "
          f"{'(before)':>9} {'alloc MB':>9} {'s':>6}")
    for name, r in results.items():
        print(f"{name:<10} {r['file_mb']:>8} {r['declared_decoded_mb']:>10} {r['status']:>6} {r['stored_images']:>6} "
              f"{r['peak_rss_mb']:>11} {r['rss_before_mb']:>9} {r['request_alloc_peak_mb']:>9} {r['seconds']:>6}")
    for name in ("npz_bomb", "tiff_bomb"):
        print(f"{name}: {results[name]['error']}")
    bombs = [results["npz_bomb"], results["tiff_bomb"]]
    summary = {
        "max_decoded_mb": results["npz_bomb"]["max_decoded_mb"],
        "npz_bomb": {k: results["npz_bomb"][k] for k in ("file_mb", "declared_decoded_mb", "status",
                                                           "stored_images", "peak_rss_mb")},
        "tiff_bomb": {k: results["tiff_bomb"][k] for k in ("file_mb", "declared_decoded_mb", "status",
                                                             "stored_images", "peak_rss_mb")},
        "reference": {k: results["reference"][k] for k in ("file_mb", "declared_decoded_mb", "status",
                                                             "stored_images", "peak_rss_mb",
                                                             "rss_before_mb", "request_alloc_peak_mb")},
        "goal_peak_mb": GOAL_PEAK_MB,
        "goal_met": all(b["status"] == 413 and b["stored_images"] == 0 and b["peak_rss_mb"] < GOAL_PEAK_MB
                        for b in bombs) and results["reference"]["status"] == 201,
        "python": sys.version.split()[0], "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
