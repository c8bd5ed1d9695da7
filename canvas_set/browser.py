"""Drawing on the Test page's real canvas with Playwright's mouse, and catching the PNG
the canvas sends to Python.

What Python receives is the component's value, sent over Streamlit's websocket: a
``BackMsg`` whose widget state holds ``{"drawing": {"raw": ..., "data":
"data:image/png;base64,..."}}`` (the page reads ``st.session_state[key]`` and gives it
to ``mlp_lab.drawing.digit_from_canvas_state``). ``CanvasPen`` listens to the frames the
page sends on that websocket and takes the data URL out of the last one sent after the
pen's last stroke: the very bytes the server reads. As a second check it compares them
with ``toDataURL()`` of the component's drawing canvas (``canvas.dc-canvas``), which is
what the component encodes before it sends.

Used by ``canvas_set/make_set.py`` and ``tests/browser/test_canvas_set_browser.py``.
"""

from __future__ import annotations

import re
import time

from .pens import Drawing

DATA_URL = re.compile(rb"data:image/png;base64,[A-Za-z0-9+/]+=*")
VIEWPORT = {"width": 1400, "height": 1000}  # tests/browser/browser_ui.py's laptop
QUIET_S = 0.4  # no new send for this long after the last one: the drawing is complete
SEND_TIMEOUT_S = 10.0
HOVER_MS = 400  # the toolbar's CSS moves it off the canvas 0.1 s after the hover, in 0.1 s
LOWER_CANVAS = """() => {
  const c = document.querySelector('[data-testid="stBidiComponentIsolated"]')
      ?.shadowRoot?.querySelector('canvas.dc-canvas.lower-canvas')
      ?? document.querySelector('canvas.dc-canvas.lower-canvas');
  return c ? c.toDataURL('image/png') : null;
}"""


class CanvasPen:
    """The Test page of one browser page: draw a ``Drawing``, get the PNG data URL
    Python received, read the page's answer, press Clear."""

    def __init__(self, page):
        self.page = page
        self.frames: list[tuple[float, bytes]] = []  # (perf_counter when seen, payload)
        self.mismatches = 0  # sends that differed from the canvas's own toDataURL
        self.blank: str | None = None  # toDataURL() of the empty canvas
        page.on("websocket", self._watch)

    def _watch(self, ws) -> None:
        def sent(payload) -> None:
            data = payload if isinstance(payload, bytes) else payload.encode("utf-8", "replace")
            if b"data:image/png;base64," in data:
                self.frames.append((time.perf_counter(), data))
        ws.on("framesent", sent)

    def canvas(self):
        return self.page.locator("canvas.upper-canvas").first

    def draw(self, d: Drawing) -> str:
        """Draw with the mouse (pen-up pauses between strokes, as a hand), wait until the
        canvas has sent the finished drawing, and return that data URL."""
        page = self.page
        self._wait_for_empty_canvas()
        box = self.canvas().bounding_box()
        x0, y0 = box["x"], box["y"]
        # The hand comes into the box before it draws: the hover lifts the component's
        # (invisible) toolbar off the canvas's top edge, where it would take the click.
        page.mouse.move(x0 + box["width"] / 2, y0 + box["height"] / 2)
        page.wait_for_timeout(HOVER_MS)
        for i, stroke in enumerate(d.strokes):
            page.mouse.move(x0 + stroke[0][0], y0 + stroke[0][1])
            page.mouse.down()
            for x, y in stroke[1:]:
                page.mouse.move(x0 + x, y0 + y, steps=d.steps)
            page.mouse.up()
            if i < len(d.strokes) - 1:
                page.wait_for_timeout(d.pauses_ms[i])
        released = time.perf_counter()
        url = self._last_send_after(released)
        drawn = page.evaluate(LOWER_CANVAS)
        if drawn != url:
            self.mismatches += 1
            raise AssertionError("the PNG sent to Python differs from the canvas's toDataURL()")
        return url

    def _wait_for_empty_canvas(self, timeout: float = 10.0) -> None:
        """The first time, remember the empty canvas; later, wait until the canvas is
        empty again (a Clear remounts it), so no drawing is drawn over the last."""
        deadline = time.perf_counter() + timeout
        while True:
            now = self.page.evaluate(LOWER_CANVAS)
            if now is not None and (self.blank is None or now == self.blank):
                self.blank = self.blank or now
                return
            if time.perf_counter() > deadline:
                raise AssertionError("the canvas is not empty before drawing")
            self.page.wait_for_timeout(100)

    def _last_send_after(self, released: float) -> str:
        """The data URL of the last send, once one came after ``released`` and none
        followed for QUIET_S (each stroke may send its own drawing: only the last send
        holds them all)."""
        deadline = released + SEND_TIMEOUT_S
        while time.perf_counter() < deadline:
            self.page.wait_for_timeout(50)  # lets Playwright deliver the frames
            if self.frames and self.frames[-1][0] > released \
                    and time.perf_counter() - self.frames[-1][0] > QUIET_S:
                return DATA_URL.findall(self.frames[-1][1])[-1].decode("ascii")
        raise AssertionError(f"the canvas sent no drawing within {SEND_TIMEOUT_S} s of the last stroke")

    def answer(self, timeout: float = 20.0) -> str:
        """The Test page's Prediction once it shows a digit and stays the same for 0.6 s
        (a multi-stroke drawing may show an answer to its first strokes first)."""
        deadline = time.perf_counter() + timeout
        last, since = None, time.perf_counter()
        while time.perf_counter() < deadline:
            value = self._prediction()
            if value != last:
                last, since = value, time.perf_counter()
            elif value not in (None, "–") and time.perf_counter() - since > 0.6:
                return value
            self.page.wait_for_timeout(100)
        raise AssertionError(f"the Test page's answer stayed {last!r} for {timeout} s")

    def _prediction(self) -> str | None:
        metric = self.page.get_by_test_id("stMetric").filter(has_text="Prediction").first
        try:
            return metric.get_by_test_id("stMetricValue").inner_text(timeout=2000).strip()
        except Exception:  # noqa: BLE001 (the fragment is re-rendering: read again)
            return None

    def clear(self) -> None:
        """Press Clear as a user would, and wait for an empty canvas and no answer."""
        page = self.page
        page.get_by_role("button", name="Clear").click()
        page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMetric"]')]
            .some(m => m.textContent.includes('Prediction') && m.textContent.includes('–'))""")
        self.canvas().wait_for()
        page.wait_for_timeout(300)
