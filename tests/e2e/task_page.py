"""Drive the annotate page inside its host page's iframe like a person would: real mouse and keyboard
input at image pixels, and read-outs of what the page holds (labels, save state, history).

Pages run under a strict CSP (no eval), so waiting is done by polling ``frame.evaluate`` or by
selectors, never with Playwright's string predicates.
"""

from __future__ import annotations

import base64
import time

import numpy as np

READ_LAYERS_JS = """() => {
  const ed = window.looplabel.editor;
  return ed.layers.map((l) => {
    const b = new Uint8Array(l.data.buffer, l.data.byteOffset, l.data.byteLength);
    let s = "";
    for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
    return btoa(s);
  });
}"""


class TaskPage:
    """The host page ``page`` and the task iframe ``#task`` in it."""

    def __init__(self, page, iframe_selector: str = "iframe"):
        self.page = page
        self.iframe = page.wait_for_selector(iframe_selector)
        self.frame = self.iframe.content_frame()

    def wait_ready(self, timeout_s: float = 20) -> "TaskPage":
        """Wait until the editor is up (``#annotate[data-ready=true]``)."""
        self.frame.wait_for_selector('#annotate[data-ready="true"]', state="attached", timeout=timeout_s * 1000)
        return self

    def reload(self) -> "TaskPage":
        """Reload the task frame alone (the host page stays) and wait for the editor."""
        with self.frame.expect_navigation():
            self.frame.evaluate("() => location.reload()")
        return self.wait_ready()

    def wait_until(self, expression: str, timeout_s: float = 15, what: str = "") -> object:
        """Poll a JS function source (``"() => ..."``) in the frame until it returns a truthy value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.frame.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or expression} (last value {value!r})")
            self.page.wait_for_timeout(50)

    def point(self, y: float, x: float) -> tuple[float, float]:
        """Page coordinates of the centre of image pixel (y, x)."""
        box = self.iframe.bounding_box()
        p = self.frame.evaluate("([y, x]) => window.looplabel.editor.view.imageToClient(y + 0.5, x + 0.5)", [y, x])
        return box["x"] + p["x"], box["y"] + p["y"]

    def click_pixel(self, y: int, x: int) -> None:
        self.page.mouse.click(*self.point(y, x))

    def stroke_row(self, y: int, x0: int, x1: int, steps: int = 8) -> None:
        """Press at pixel (y, x0), drag along the row to (y, x1), release."""
        self.page.mouse.move(*self.point(y, x0))
        self.page.mouse.down()
        self.page.mouse.move(*self.point(y, x1), steps=steps)
        self.page.mouse.up()

    def drag_path(self, path, steps: int = 2, before_release=None) -> None:
        """Press at the first pixel of ``path`` ((y, x) pairs), drag through the others, release.

        ``before_release`` (optional) is called with the button still down, e.g. to look at the
        stroke the page draws.
        """
        self.page.mouse.move(*self.point(*path[0]))
        self.page.mouse.down()
        for y, x in path[1:]:
            self.page.mouse.move(*self.point(y, x), steps=steps)
        if before_release is not None:
            before_release()
        self.page.mouse.up()

    def key(self, combo: str) -> None:
        self.page.keyboard.press(combo)

    def layers(self) -> np.ndarray:
        """The page's current label stack, (2, h, w) int32."""
        task = self.frame.evaluate("() => window.looplabel.editor && [window.looplabel.editor.height, window.looplabel.editor.width]")
        h, w = task
        encoded = self.frame.evaluate(READ_LAYERS_JS)
        return np.stack([np.frombuffer(base64.b64decode(e), dtype="<i4").reshape(h, w) for e in encoded])

    def save_state(self) -> str:
        return self.frame.get_attribute('[data-role="save"]', "data-state")

    def wait_save_state(self, state: str, timeout_s: float = 15) -> None:
        self.wait_until(f"() => document.querySelector('[data-role=\"save\"]').dataset.state === {state!r}",
                        timeout_s, what=f"save state {state}")

    def undo_depth(self) -> int:
        return self.frame.evaluate("() => window.looplabel.editor.history.undoStack.length")

    def wait_local_copy(self) -> None:
        """Wait for the debounced IndexedDB write of the latest edit."""
        self.frame.evaluate("() => new Promise((r) => setTimeout(r, 400)).then(() => window.looplabel.saver.localWrite)")
