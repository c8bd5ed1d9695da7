"""Every device in the classroom, and every student (issue 15), in real Chromium.

* axe-core (the npm package of package.json, injected into the page) on every page at
  1400, 1024, 820 and 390 px wide, with a drawn digit on Test and Why: no serious or
  critical violation; no request leaves the server (the favicon is local); a screenshot
  of each page at each width (docs/screenshots/devices with --update-screenshots).
* A tablet and a phone with touch (CDP ``Input.dispatchTouchEvent``), at their screens'
  pixel densities: a digit drawn with a finger is answered, the page does not scroll
  while drawing, the canvas is whole and nothing covers the answer (bounding boxes).
* The end-of-run and link toasts are named; the keyboard alone reaches and presses Train.
"""

from __future__ import annotations

import pytest

from browser_ui import PAGE_TITLES, assert_no_exception, metric_value
from test_dashboard import draw, set_steps, wait_for_metric_change

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# (name in the screenshots, the page's address, its title)
PAGES = [("model", "", "MLP Lab"), ("train", "train", "Train"), ("weights", "weights", "Weights"),
         ("test", "testing", "Test"), ("lessons", "lesson", "Lessons"),
         ("compare", "compare", "Notebook vs modern"), ("why", "why", "Why this answer"),
         ("inside", "inside", "Inside the network"), ("replay", "replay", "Replay"),
         ("keras", "keras", "NumPy vs Keras")]
assert sorted(title for *_, title in PAGES) == sorted(PAGE_TITLES.values())
# width: (height, touch): a laptop, a small laptop or a Chromebook, a tablet, a phone
VIEWPORTS = {1400: (1000, False), 1024: (768, False), 820: (1180, True), 390: (844, True)}
TABLET = dict(viewport={"width": 820, "height": 1180}, device_scale_factor=2, has_touch=True, is_mobile=True)
PHONE = dict(viewport={"width": 390, "height": 844}, device_scale_factor=3, has_touch=True, is_mobile=True)
SERIOUS = ("serious", "critical")
ONE = [(140, 40 + 10 * i) for i in range(21)]  # a vertical stroke down the canvas: "1"

# The canvas is in an open shadow root: elementFromPoint there says what is on top at a point
# (an element of the page over it would come back as itself, outside that root).
CANVAS_CORNERS_ON_TOP = """() => {
  for (const host of document.querySelectorAll('*')) {
    const root = host.shadowRoot;
    const canvas = root && root.querySelector('canvas.upper-canvas');
    if (!canvas) continue;
    const r = canvas.getBoundingClientRect();
    const inset = 4;
    const corners = [[r.left + inset, r.top + inset], [r.right - inset, r.top + inset],
                     [r.left + inset, r.bottom - inset], [r.right - inset, r.bottom - inset]];
    return {width: r.width, height: r.height,
            // the canvas or the component's own toolbar on it, nothing of the page
            onTop: corners.map(([x, y]) => root.elementFromPoint(x, y)?.getRootNode() === root)};
  }
  return null;
}"""
# How far every scrolled element is scrolled (Streamlit scrolls inside its own container).
SCROLLED = "() => [...document.querySelectorAll('*')].reduce((sum, el) => sum + el.scrollTop, 0)"


def axe(page, axe_script) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_script))
    violations = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["html"][:120] for n in v["nodes"][:3]]}
            for v in violations if v["impact"] in SERIOUS]


def touch_stroke(page, points) -> None:
    """One finger stroke through ``points`` (canvas pixels), as touch events only."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    cdp = page.context.new_cdp_session(page)
    kinds = ["touchStart"] + ["touchMove"] * (len(points) - 1)
    for kind, (x, y) in zip(kinds, points):
        cdp.send("Input.dispatchTouchEvent",
                 {"type": kind, "touchPoints": [{"x": box["x"] + x, "y": box["y"] + y}]})
        page.wait_for_timeout(15)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def box_of(locator) -> dict:
    """The element's box in the page's coordinates (scrolling does not move it), so boxes
    measured one after another can be compared."""
    return locator.evaluate("""(e) => {
      const r = e.getBoundingClientRect();
      const scrolled = [...document.querySelectorAll('*')].reduce((sum, el) => sum + el.scrollTop, 0);
      return {x: r.left, y: r.top + scrolled, width: r.width, height: r.height};
    }""")


def overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


@pytest.fixture(scope="module")
def trained(browser, server) -> dict:
    """A student whose network read digits (500 steps): the cookie, for every device."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{server.url}/train")
    page.get_by_role("heading", name="Train", exact=True).first.wait_for()
    set_steps(page, 2)  # 2,000 -> 500
    finished = page.get_by_text("Finished: trained 500 steps").first
    for _ in range(3):  # a click that lands while the first visit's page reruns is lost: press again
        page.get_by_role("button", name="Train", exact=True).click()
        try:
            finished.wait_for(timeout=90_000)
            break
        except Exception:  # noqa: BLE001 (not started, or not finished yet: see the Train button)
            if not page.get_by_role("button", name="Train", exact=True).is_enabled():
                finished.wait_for(timeout=120_000)  # it trains: wait on
                break
    finished.wait_for(timeout=1_000)
    state = context.storage_state()
    context.close()
    return state


def open_as(browser, trained, url: str, **device):
    context = browser.new_context(storage_state=trained, **device)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    return context, page


def open_canvas_page(browser, trained, url: str, title: str, device: dict):
    """The page on ``device``, its canvas whole: 280 × 280 and nothing of the page over it."""
    context, page = open_as(browser, trained, url, **device)
    page.get_by_role("heading", name=title, exact=True).first.wait_for()
    page.locator("canvas.upper-canvas").first.wait_for()
    page.wait_for_timeout(300)
    canvas = page.evaluate(CANVAS_CORNERS_ON_TOP)
    assert canvas["width"] == canvas["height"] == 280 and all(canvas["onTop"]), canvas
    return context, page


def draw_digit(page, touch: bool) -> None:
    page.locator("canvas.upper-canvas").first.wait_for()
    page.wait_for_timeout(300)
    if touch:
        touch_stroke(page, ONE)
    else:
        page.locator("canvas.upper-canvas").first.scroll_into_view_if_needed()
        draw(page, [ONE])


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_every_page_at_every_width(browser, server, trained, axe_script, screenshot, width):
    height, touch = VIEWPORTS[width]
    context, page = open_as(browser, trained, server.url, viewport={"width": width, "height": height},
                            has_touch=touch, is_mobile=touch)
    off_host = []
    page.on("request", lambda r: None if r.url.startswith(
        (server.url, server.url.replace("http", "ws"), "data:", "blob:")) else off_host.append(r.url))
    found = {}
    try:
        for name, path, title in PAGES:
            page.goto(f"{server.url}/{path}")
            page.get_by_role("heading", name=title, exact=True).first.wait_for()
            page.get_by_text("Steps trained").first.wait_for(state="attached")
            if name == "test":  # the drawn digit's picture and the answer's chart, too
                draw_digit(page, touch)
                page.get_by_text("28 × 28, as the network receives it").wait_for()
            elif name == "why":
                draw_digit(page, touch)
                page.get_by_text("Why: which pixels decided it").wait_for()
            page.wait_for_timeout(1500)  # charts drawn
            assert_no_exception(page)
            found[name] = axe(page, axe_script)
            content = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
            screenshot(page, f"devices/{name}_{width}", height=min(max(content, height), 4000))
    finally:
        context.close()
    assert not {k: v for k, v in found.items() if v}, f"axe-core at {width} px: {found}"
    assert not off_host, f"requests that left the server: {off_host}"


@pytest.mark.parametrize("device", [TABLET, PHONE], ids=["tablet", "phone"])
def test_a_digit_drawn_with_a_finger_is_answered_in_view(browser, server, trained, device):
    context, page = open_canvas_page(browser, trained, f"{server.url}/testing", "Test", device)
    try:
        assert metric_value(page, "Prediction") == "–"
        page.locator("canvas.upper-canvas").first.scroll_into_view_if_needed()
        scrolled = page.evaluate(SCROLLED)
        touch_stroke(page, ONE)
        assert page.evaluate(SCROLLED) == scrolled, "the page scrolled while the finger drew"
        value, _ = wait_for_metric_change(page, "Prediction", "–")
        # The canvas sent a 2x (tablet) or 3x (phone) PNG: still read as the digit drawn.
        assert value == "1", f"a clear 1 drawn with a finger was read as {value}"
        page.get_by_text("28 × 28, as the network receives it").wait_for()
        canvas_box = box_of(page.locator("canvas.upper-canvas").first)
        prediction = page.get_by_test_id("stMetric").filter(has_text="Prediction").first
        answer, sure = box_of(prediction), box_of(page.get_by_text("% sure.").first)
        picture = box_of(page.get_by_role("img", name="Your drawing as the 28 × 28 image"))
        chart = box_of(page.get_by_test_id("stPlotlyChart").filter(has_text="How sure it is").first)
        for a, b, what in ((answer, picture, "the prediction and the 28 × 28 picture"),
                           (sure, picture, "'% sure' and the 28 × 28 picture"),
                           (chart, picture, "the answer's chart and the 28 × 28 picture"),
                           (answer, canvas_box, "the prediction and the canvas")):
            assert not overlap(a, b), f"{what} overlap: {a} {b}"
        width = device["viewport"]["width"]
        for b in (answer, picture, chart, canvas_box):
            assert b["x"] >= 0 and b["x"] + b["width"] <= width + 0.5, f"cut off at the side: {b}"
        # Stacked: the answer right under the canvas (only the Clear button and a line between).
        assert answer["y"] >= canvas_box["y"] + canvas_box["height"]
        assert answer["y"] - (canvas_box["y"] + canvas_box["height"]) < 250, (answer, canvas_box)
        # The ✓/✗ labels of the random test images do not run into each other.
        labels = [box_of(t) for t in page.get_by_test_id("stPlotlyChart").filter(
            has_text="of 16 right").locator(".annotation-text").all()]
        assert len(labels) == 16
        assert not [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:] if overlap(a, b)]
        # Plotly's toolbar does not cover a chart's title on a touch screen.
        for plot in page.get_by_test_id("stPlotlyChart").all():
            bar, title = plot.locator(".modebar-container"), plot.locator(".gtitle")
            if bar.count() and bar.first.is_visible() and title.count():
                assert not overlap(box_of(bar.first), box_of(title.first)), "the toolbar covers a title"
        assert_no_exception(page)
    finally:
        context.close()


@pytest.mark.parametrize("device", [TABLET, PHONE], ids=["tablet", "phone"])
def test_why_page_with_a_finger(browser, server, trained, device):
    context, page = open_canvas_page(browser, trained, f"{server.url}/why", "Why this answer", device)
    try:
        touch_stroke(page, ONE)
        page.get_by_text("Why: which pixels decided it").wait_for()
        canvas_box = box_of(page.locator("canvas.upper-canvas").first)
        width = device["viewport"]["width"]
        for label in ("A · Just shrunk", "B · MNIST-style"):
            picture = box_of(page.get_by_role("img", name=f"{label}: your drawing"))
            assert not overlap(picture, canvas_box) and picture["x"] + picture["width"] <= width + 0.5
            assert metric_value(page, f"{label}: answer") == "1"
        assert_no_exception(page)
    finally:
        context.close()


def test_toasts_have_a_name(browser, server, axe_script):
    """Streamlit's toast is an alertdialog; without a name a screen reader says nothing of it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{server.url}/weights?lesson=adam")
        toast = page.get_by_test_id("stToast").first
        toast.wait_for()
        dialog = page.get_by_role("alertdialog", name="Settings from the link")
        dialog.first.wait_for()
        assert not [v for v in axe(page, axe_script) if v["id"] == "aria-dialog-name"]
    finally:
        context.close()


def test_the_keyboard_alone_reaches_and_presses_train(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    focused = "() => { const e = document.activeElement; return e ? [e.tagName, e.innerText.trim()] : null }"
    try:
        page.goto(f"{server.url}/train")
        page.get_by_role("heading", name="Train", exact=True).first.wait_for()
        page.wait_for_timeout(500)
        for presses in range(1, 81):
            page.keyboard.press("Tab")
            if page.evaluate(focused) == ["BUTTON", "Train"]:
                break
        else:
            pytest.fail("80 presses of Tab never reached the Train button")
        page.keyboard.press("Enter")
        page.get_by_text("Training: step").first.wait_for(timeout=60_000)
        stop = page.get_by_role("button", name="Stop", exact=True)
        stop.wait_for()
        page.wait_for_function("() => [...document.querySelectorAll('button')].some("
                               "b => b.innerText.trim() === 'Stop' && !b.disabled)")
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate(focused) == ["BUTTON", "Stop"]:
                break
        else:
            pytest.fail("80 presses of Tab never reached the Stop button")
        page.keyboard.press("Enter")
        page.get_by_text("Stopped").first.wait_for(timeout=30_000)
        print(f"MEASURED tab presses to Train: {presses}")
    finally:
        context.close()
