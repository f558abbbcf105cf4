"""The expert review page end to end, in Chromium, against the real app on PostgreSQL.

Stitched images are seeded through the services (crop → fused crops written directly →
``stitch_image``): the fused crops are the ground truth, except one crop that lost a cell lying
in its seam (so the stitch records conflicts), and the round's prediction lacks some cells (so
the crowd "changed" them). A reviewer logs in through the /login form, as a person would.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass

import numpy as np
import pytest
from sqlalchemy import select

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

PASSWORD = "review-pass-1"
BRUSH_RADIUS = 3  # the editor's default brush radius, px
CHANNELS = ["DAPI", "membrane", "CD45"]

READ_LAYERS_JS = """() => {
  const ed = window.looplabel.editor;
  return ed.layers.map((l) => {
    const b = new Uint8Array(l.data.buffer, l.data.byteOffset, l.data.byteLength);
    let s = "";
    for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
    return btoa(s);
  });
}"""

# Record every image rectangle the editor repaints and every screen redraw (null part = whole view).
WATCH_REDRAWS_JS = """() => {
  const view = window.looplabel.editor.view;
  window.redraws = { painted: [], screen: [] };
  const paint = view.paint;
  view.paint = (out, rect) => { window.redraws.painted.push(rect.slice()); paint(out, rect); };
  const draw = view.image.draw.bind(view.image);
  view.image.draw = (ctx, vp, dpr, visible, part = null) => {
    window.redraws.screen.push(part ? part.slice() : null);
    draw(ctx, vp, dpr, visible, part);
  };
}"""


@dataclass
class SeededImage:
    image_id: int
    stitch_id: int
    labels: np.ndarray  # (2, H, W) int32 as stitched
    crops: list[dict]  # id, index, bbox, is_gold


# --- seeding ---------------------------------------------------------------------------------------
def _npz(image: np.ndarray, labels: np.ndarray) -> bytes:
    """A TissueNet-layout file: X (H, W, C), y (H, W, 2)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, X=np.moveaxis(image, 0, -1), y=np.moveaxis(labels, 0, -1).astype(np.int32))
    return buf.getvalue()


def tissue_file(size: int, seed: int) -> bytes:
    """Synthetic tissue of ``size``² px; above 512 px, 512² tiles with distinct cell ids (fast)."""
    from backend.core.synthetic import synthetic_tissue

    tile = min(size, 512)
    reps = -(-size // tile)
    image = np.zeros((len(CHANNELS), size, size), dtype=np.float32)
    labels = np.zeros((2, size, size), dtype=np.int32)
    offset = 0
    for ty in range(reps):
        for tx in range(reps):
            t = synthetic_tissue(tile, tile, n_channels=len(CHANNELS), seed=seed + ty * reps + tx)
            ys, xs = slice(ty * tile, min(size, (ty + 1) * tile)), slice(tx * tile, min(size, (tx + 1) * tile))
            h, w = ys.stop - ys.start, xs.stop - xs.start
            image[:, ys, xs] = t.image[:, :h, :w]
            part = t.labels[:, :h, :w].astype(np.int32)
            labels[:, ys, xs] = np.where(part > 0, part + offset, 0)
            offset += int(t.labels.max()) + 1
    return _npz(image, labels)


def seed_review_project(runtime, name: str, sizes: list[int], seed: int = 3) -> tuple[int, list[SeededImage]]:
    """A project whose images are stitched and waiting for review (round 0)."""
    from backend.models import Crop, Round
    from backend.services import labels_io
    from backend.services.images import Upload, import_images
    from backend.services.projects import create_project
    from backend.services.stitching import crop_image, stitch_image

    store = runtime.store
    out = []
    with runtime.db.session() as s:
        project = create_project(s, name, CHANNELS, annotators_per_crop=1, gold_fraction=0.0,
                                 instructions="Correct every cell.")
        rnd = Round(project_id=project.id, number=0)
        s.add(rnd)
        s.flush()
        images = import_images(s, store, project, [Upload(f"tissue-{i}.npz", tissue_file(size, seed + 17 * i))
                                                  for i, size in enumerate(sizes)])
        for image in images:
            truth = labels_io.get_labels(store, image.ground_truth_key)
            predicted = truth.copy()
            ids = np.unique(truth[0])[1:]
            predicted[0][np.isin(truth[0], ids[::9])] = 0  # the model missed every 9th cell
            labels_io.put_labels(store, labels_io.prediction_key(image.id, 0), predicted)
            crops = crop_image(s, store, image.id, rnd.id)
            right = next(c for c in crops if c.y0 == crops[0].y0 and c.x0 > 0)  # crop 0's right neighbour
            seam = truth[0][crops[0].y0:crops[0].y1, right.x0:crops[0].x1]
            lost = np.unique(seam[seam > 0])[len(np.unique(seam[seam > 0])) // 2]  # a cell in their seam
            for c in crops:
                window = truth[:, c.y0:c.y1, c.x0:c.x1].copy()
                if c.id == right.id:
                    window[0][window[0] == lost] = 0  # this crop's annotator deleted it: a seam conflict
                key = labels_io.fused_key(c.id, c.generation)
                labels_io.put_labels(store, key, window)
                c.fused_key, c.status = key, "fused"
            s.flush()
            stitch = stitch_image(s, store, image.id, rnd.id)
            assert stitch is not None and stitch.n_conflict_pixels > 0 and stitch.n_changed_cells > 0
            rows = s.scalars(select(Crop).where(Crop.image_id == image.id).order_by(Crop.index)).all()
            out.append(SeededImage(image.id, stitch.id, labels_io.get_labels(store, stitch.key),
                                   [{"id": c.id, "index": c.index, "bbox": [c.y0, c.x0, c.y1, c.x1],
                                     "is_gold": c.is_gold} for c in rows]))
        return project.id, out


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def review_app(crowd_runtime):
    """The app on http://127.0.0.1:<port>, with the review pages registered."""
    from backend.api import review_pages
    from backend.app import build_app
    from tests.e2e.crowd_site import LiveServer

    app = build_app(runtime=crowd_runtime)
    if review_pages.bp.name not in app.blueprints:  # until the app factory registers it
        app.register_blueprint(review_pages.bp)
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def reviewers(crowd_runtime):
    from backend.services.users import create_user

    with crowd_runtime.db.session() as s:
        for name in ("rita", "sam"):
            create_user(s, name, "reviewer", PASSWORD)
    return ("rita", "sam")


def new_page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 860})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return page


# --- driving the page --------------------------------------------------------------------------------
class ReviewPage:
    """The review editor page, driven with real mouse and keyboard input."""

    def __init__(self, page):
        self.page = page

    @classmethod
    def login(cls, page, base_url: str, username: str, next_path: str = "/review") -> "ReviewPage":
        page.goto(f"{base_url}/login?next={next_path}")
        page.fill('input[name="username"]', username)
        page.fill('input[name="password"]', PASSWORD)
        with page.expect_navigation():
            page.click('main button[type="submit"]')
        return cls(page)

    def open(self, base_url: str, stitch_id: int) -> "ReviewPage":
        self.page.goto(f"{base_url}/review/{stitch_id}")
        return self.wait_ready()

    def wait_ready(self) -> "ReviewPage":
        self.page.wait_for_selector('#review[data-ready="true"]', state="attached", timeout=60000)
        return self

    def wait_until(self, expression: str, timeout_s: float = 20, what: str = ""):
        """Poll a JS function source in the page (the CSP forbids Playwright's string predicates)."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.page.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or expression} (last value {value!r})")
            self.page.wait_for_timeout(50)

    def point(self, y: float, x: float) -> tuple[float, float]:
        p = self.page.evaluate("([y, x]) => window.looplabel.editor.view.imageToClient(y + 0.5, x + 0.5)", [y, x])
        return p["x"], p["y"]

    def click_pixel(self, y: int, x: int) -> None:
        self.page.mouse.click(*self.point(y, x))

    def stroke_row(self, y: int, x0: int, x1: int, steps: int = 10) -> None:
        self.page.mouse.move(*self.point(y, x0))
        self.page.mouse.down()
        self.page.mouse.move(*self.point(y, x1), steps=steps)
        self.page.mouse.up()

    def layers(self) -> np.ndarray:
        h, w = self.page.evaluate("() => [window.looplabel.editor.height, window.looplabel.editor.width]")
        encoded = self.page.evaluate(READ_LAYERS_JS)
        return np.stack([np.frombuffer(base64.b64decode(e), dtype="<i4").reshape(h, w) for e in encoded])

    def pixel(self, y: int, x: int) -> list[int]:
        """RGBA of image pixel (y, x) in the editor's image buffer (what the tiles show)."""
        return self.page.evaluate("""([y, x]) => { const v = window.looplabel.editor.view; v.renderNow();
            const i = (y * v.width + x) * 4; return Array.from(v.pixels.subarray(i, i + 4)); }""", [y, x])

    def overlay_alpha(self, y: float, x: float) -> int:
        """Alpha of the overlay canvas (crop borders, cursors) at the screen point of image (y, x)."""
        return self.page.evaluate("""([y, x]) => { const ed = window.looplabel.editor, v = ed.view; v.renderNow();
            const p = ed.view.viewport;
            const sx = Math.round(x * p.scale + p.offsetX), sy = Math.round(y * p.scale + p.offsetY);
            return v.overlay.getContext("2d").getImageData(sx * v.dpr, sy * v.dpr, 1, 1).data[3]; }""", [y, x])

    def save_state(self) -> str:
        return self.page.get_attribute('[data-role="save"]', "data-state")

    def wait_save_state(self, state: str) -> None:
        self.wait_until(f"() => document.querySelector('[data-role=\"save\"]').dataset.state === {state!r}",
                        what=f"save state {state}")

    def toggle_overlay(self, name: str) -> None:
        self.page.click(f'[data-role="overlay-{name}"]')
        if name != "crops":
            self.wait_until(f"() => window.looplabel.overlays.masks[{name!r}] !== null", what=f"the {name} mask")


def painted_row(labels: np.ndarray, y: int, x0: int, x1: int, radius: float, value: int) -> np.ndarray:
    """A brush stroke (safe mode, the default) along row ``y`` from ``x0`` to ``x1``: background
    pixels whose centre lies within ``radius`` of the stroke take ``value``."""
    out = labels.copy()
    yy, xx = np.mgrid[:out.shape[0], :out.shape[1]]
    dx = np.clip(xx, x0, x1) - xx
    out[(dx ** 2 + (yy - y) ** 2 <= radius ** 2 + 1e-9) & (out == 0)] = value
    return out


def edge_pixel(mask: np.ndarray) -> tuple[int, int]:
    """A pixel of ``mask`` with a 4-neighbour (inside the image) outside it."""
    padded = np.pad(mask, 1, constant_values=True)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    ys, xs = np.nonzero(mask & ~inner)
    return int(ys[0]), int(xs[0])


def quiet_row(labels: np.ndarray, rows: range, x0: int, x1: int) -> int:
    """A row whose stretch [x0, x1] is background over ±5 rows (a new cell drawn there stands alone)."""
    for y in rows:
        if not labels[0, y - 5:y + 6, x0 - 5:x1 + 6].any():
            return y
    return rows.start  # crowded: the safe brush paints the background there


# --- tests -----------------------------------------------------------------------------------------
def test_review_queue_edit_approve_and_reject(chromium, crowd_runtime, review_app, reviewers, screenshot_dir):
    from backend.models import Crop, Image, LabelRevision, Stitch
    from backend.services import labels_io, review
    from backend.services.stitching import stitch_image

    project_id, (first, second) = seed_review_project(crowd_runtime, "e2e-review", [512, 512])
    page = new_page(chromium)
    ui = ReviewPage.login(page, review_app.url, reviewers[0])

    # The queue: both images, oldest first, with their figures; the first row opens the editor.
    assert page.url.endswith("/review")
    rows = page.eval_on_selector_all('[data-role="review-queue"] tbody tr',
                                     "rs => rs.map(r => Number(r.dataset.stitchId))")
    assert rows == [first.stitch_id, second.stitch_id]
    with crowd_runtime.db.session() as s:
        stitch = s.get(Stitch, first.stitch_id)
        figures = (stitch.n_cells, stitch.n_conflict_pixels, stitch.n_changed_cells)
    row_text = page.text_content(f'tr[data-stitch-id="{first.stitch_id}"]').replace(",", "")
    assert all(str(n) in row_text for n in figures)
    page.screenshot(path=str(screenshot_dir / "review_queue.png"))
    with page.expect_navigation():
        page.click(f'tr[data-stitch-id="{first.stitch_id}"] a.btn')
    ui.wait_ready()
    assert np.array_equal(ui.layers(), first.labels)

    # Overlays: seam conflicts and changed cells tint their pixels; crop borders line the crops.
    conflicts = crowd_runtime.store.get_arrays(stitch.conflicts_key)["conflicts"]
    cy, cx = edge_pixel(conflicts[0])
    with crowd_runtime.db.session() as s:
        changed = review.changed_mask(crowd_runtime.store, s.get(Stitch, first.stitch_id), 0, first.image_id,
                                      first.labels)
    changed_only = changed & ~conflicts[0]
    dy, dx = edge_pixel(changed_only)
    plain = {"conflict": ui.pixel(cy, cx), "changed": ui.pixel(dy, dx)}
    ui.toggle_overlay("conflicts")
    ui.toggle_overlay("changed")
    ui.toggle_overlay("crops")
    assert ui.pixel(cy, cx)[:3] == [255, 176, 0]  # conflict outline: opaque amber
    tinted = ui.pixel(dy, dx)
    assert tinted != plain["changed"] and tinted[0] > 200 and tinted[2] > 200  # changed outline: magenta
    crop = first.crops[3]  # bottom-right crop: its top border lies inside crop 1
    page.mouse.move(5, 5)
    border_y, border_x = crop["bbox"][0], (crop["bbox"][1] + crop["bbox"][3]) // 2
    assert ui.overlay_alpha(border_y, border_x) > 0
    page.screenshot(path=str(screenshot_dir / "review_overlays.png"))
    ui.toggle_overlay("crops")
    assert ui.overlay_alpha(border_y, border_x) == 0
    page.click('[data-role="overlay-conflicts"]')
    assert ui.pixel(cy, cx) == plain["conflict"]
    assert page.is_checked('[data-role="overlay-changed"]') and not page.is_checked('[data-role="overlay-conflicts"]')

    # Edit one cell with the brush (a new id along a quiet row), save, and check the stored revision.
    y = quiet_row(first.labels, range(300, 500), 300, 360)
    new_id = int(first.labels[0].max()) + 1
    page.click('button[data-action="label:new"]')
    ui.stroke_row(y, 300, 360)
    expected = first.labels.copy()
    expected[0] = painted_row(expected[0], y, 300, 360, BRUSH_RADIUS, new_id)
    assert np.array_equal(ui.layers(), expected)
    assert ui.save_state() in ("unsaved", "saving")
    page.click('[data-role="save-button"]')
    ui.wait_save_state("saved")
    with crowd_runtime.db.session() as s:
        rev = s.scalar(select(LabelRevision).where(LabelRevision.stitch_id == first.stitch_id))
        assert rev.number == 1 and s.get(Stitch, first.stitch_id).revision == 1
        stored = labels_io.get_labels(crowd_runtime.store, rev.key)
    assert stored.dtype == np.int32 and np.array_equal(stored, expected)

    # Approve: the image's labels are the edited ones.
    page.click('[data-role="approve"]')
    page.click('dialog button[value="yes"]')
    page.wait_for_selector('#review[data-decision="approved"]', state="attached")
    with crowd_runtime.db.session() as s:
        image = s.get(Image, first.image_id)
        assert image.status == "approved" and s.get(Stitch, first.stitch_id).status == "approved"
        approved = labels_io.get_labels(crowd_runtime.store, image.labels_key)
    assert np.array_equal(approved, expected)
    assert "Next image" in page.text_content('[data-role="screen-actions"]')

    # Reject the second image: pick two crops on the image, give the reason, confirm.
    with page.expect_navigation():
        page.click('[data-role="screen-actions"] button.ll-primary')  # "Next image"
    ui.wait_ready()
    assert page.url.endswith(f"/review/{second.stitch_id}")
    reason = "Nuclei along the top edge are merged; split them."
    page.click('[data-role="reject"]')
    picked = [second.crops[0], second.crops[3]]
    for c in picked:
        y0, x0, y1, x1 = c["bbox"]
        ui.click_pixel((y0 + y1) // 2, (x0 + x1) // 2)
    page.click('[data-role="reject-crops"] button[data-crop-id="%d"]' % picked[1]["id"])  # unpick …
    y0, x0, y1, x1 = picked[1]["bbox"]
    ui.click_pixel((y0 + y1) // 2, (x0 + x1) // 2)  # … and pick again
    assert page.is_disabled('[data-role="reject-confirm"]')  # no reason yet
    page.fill('[data-role="reject-reason"]', reason)
    page.mouse.move(*ui.point(y0 + 20, x0 + 20))
    page.screenshot(path=str(screenshot_dir / "review_reject.png"))
    with page.expect_request(lambda r: r.url.endswith("/reject")) as sent:
        page.click('[data-role="reject-confirm"]')
        page.click('dialog button[value="yes"]')
    assert sorted(sent.value.post_data_json["crop_ids"]) == sorted(c["id"] for c in picked)
    page.wait_for_selector('#review[data-decision="rejected"]', state="attached")
    with crowd_runtime.db.session() as s:
        rows = {c.id: c for c in s.scalars(select(Crop).where(Crop.image_id == second.image_id))}
        for c in picked:
            assert (rows[c["id"]].status, rows[c["id"]].generation, rows[c["id"]].reopen_reason) == ("open", 1, reason)
        untouched = [r for cid, r in rows.items() if cid not in {c["id"] for c in picked}]
        assert all(r.status == "fused" and r.generation == 0 and r.reopen_reason is None for r in untouched)
        assert s.get(Image, second.image_id).status == "in_crowd"
        assert [q["stitch_id"] for q in review.review_queue(s, project_id)] == []

    # Once the reopened crops are fused again, the re-stitched image is back in the queue.
    with crowd_runtime.db.session() as s:
        for c in picked:
            crop = s.get(Crop, c["id"])
            key = labels_io.fused_key(crop.id, crop.generation)
            labels_io.put_labels(crowd_runtime.store, key, second.labels[:, crop.y0:crop.y1, crop.x0:crop.x1])
            crop.fused_key, crop.status = key, "fused"
        s.flush()
        round_id = s.get(Stitch, second.stitch_id).round_id
        stitch_image(s, crowd_runtime.store, second.image_id, round_id)
    with crowd_runtime.db.session() as s:
        assert [q["stitch_id"] for q in review.review_queue(s, project_id)] == [second.stitch_id]
    assert not page.errors, page.errors
    page.context.close()


def test_two_reviewers_second_stale_save_is_asked_to_reload(chromium, crowd_runtime, review_app, reviewers,
                                                            screenshot_dir):
    from backend.models import LabelRevision
    from backend.services import labels_io

    _, (image,) = seed_review_project(crowd_runtime, "e2e-review-409", [512], seed=11)
    pages = [new_page(chromium), new_page(chromium)]
    a, b = (ReviewPage.login(p, review_app.url, name, f"/review/{image.stitch_id}").wait_ready()
            for p, name in zip(pages, reviewers))
    new_id = int(image.labels[0].max()) + 1  # both start from the same revision: both get this id
    edits = []
    for ui, rows in ((a, range(40, 200)), (b, range(300, 480))):
        y = quiet_row(image.labels, rows, 40, 100)
        ui.page.click('button[data-action="label:new"]')
        ui.stroke_row(y, 40, 100)
        expected = image.labels.copy()
        expected[0] = painted_row(expected[0], y, 40, 100, BRUSH_RADIUS, new_id)
        assert np.array_equal(ui.layers(), expected)
        edits.append(expected)
    theirs, mine = edits

    # Reviewer A saves first; reviewer B's save of the same base revision is refused and asks to reload.
    a.page.click('[data-role="save-button"]')
    a.wait_save_state("saved")
    with b.page.expect_response(lambda r: r.url.endswith("/labels") and r.request.method == "PUT") as answer:
        b.page.click('[data-role="save-button"]')
    assert answer.value.status == 409
    b.page.wait_for_selector("dialog[open]")
    assert "Another reviewer" in b.page.text_content("dialog[open] h2")
    assert b.save_state() == "conflict"
    assert b.page.is_disabled('[data-role="approve"]')
    b.page.screenshot(path=str(screenshot_dir / "review_conflict.png"))
    with crowd_runtime.db.session() as s:
        revisions = s.scalars(select(LabelRevision).where(LabelRevision.stitch_id == image.stitch_id)).all()
        assert [r.number for r in revisions] == [1]
        assert np.array_equal(labels_io.get_labels(crowd_runtime.store, revisions[0].key), theirs)

    # Reload: B now sees A's revision.
    with b.page.expect_navigation():
        b.page.click('dialog button[value="reload"]')
    b.wait_ready()
    assert np.array_equal(b.layers(), theirs)
    assert b.save_state() == "saved"
    assert "revision 1" in b.page.text_content('[data-role="save-text"]')
    for ui in (a, b):
        assert not ui.page.errors, ui.page.errors
        ui.page.context.close()


def test_local_edit_on_2048_image_repaints_only_its_neighbourhood(chromium, crowd_runtime, review_app, reviewers):
    _, (image,) = seed_review_project(crowd_runtime, "e2e-review-2048", [2048], seed=5)
    page = new_page(chromium)
    ui = ReviewPage.login(page, review_app.url, reviewers[0], f"/review/{image.stitch_id}").wait_ready()
    assert page.evaluate("() => [window.looplabel.editor.height, window.looplabel.editor.width]") == [2048, 2048]
    ui.toggle_overlay("conflicts")
    ui.toggle_overlay("changed")
    page.evaluate("() => window.looplabel.editor.view.renderNow()")
    page.evaluate(WATCH_REDRAWS_JS)

    page.click('button[data-action="label:new"]')
    ui.stroke_row(1000, 900, 1100, steps=12)
    page.evaluate("() => window.looplabel.editor.view.renderNow()")
    redraws = page.evaluate("() => window.redraws")
    assert redraws["painted"], "the stroke repainted nothing"
    radius_px = BRUSH_RADIUS + 1  # the brush's reach plus the outline ring
    for y0, x0, y1, x1 in redraws["painted"]:
        assert 1000 - radius_px - 1 <= y0 and y1 <= 1000 + radius_px + 2, (y0, y1)
        assert 900 - radius_px - 1 <= x0 and x1 <= 1100 + radius_px + 2, (x0, x1)
    assert None not in redraws["screen"], "a local edit redrew the whole view"
    painted = sum((y1 - y0) * (x1 - x0) for y0, x0, y1, x1 in redraws["painted"])
    assert painted < 0.01 * 2048 * 2048
    assert not page.errors, page.errors
    page.context.close()
