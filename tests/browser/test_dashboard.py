"""The dashboard in a real browser: `streamlit run dashboard.py` driven through Chromium.

What only a browser shows: the live refresh (``run_every`` never fires in AppTest), mouse
drawing on the canvas, the tab closing (the session ending), downloads and uploads. The
README's screenshots are taken here, from the real app (into a temporary folder; into
docs/screenshots with --update-screenshots).
"""

from __future__ import annotations

import statistics
import time

import pytest

from loadtest.server import Server

from browser_ui import assert_no_exception, go, metric_value, record

pytestmark = pytest.mark.browser

# JavaScript: watch the loss chart for ``ms`` milliseconds; report when its data changed and
# how often its DOM node was replaced.
WATCH_LOSS_CHART = """async (ms) => {
  const lossChart = () => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
      .find(el => el.textContent.includes('Loss: how wrong'));
  // The last training step the curve reaches (not its number of points: the page thins
  // the curve to at most 800 points, so a fast run can hold that count while it grows).
  const points = () => {
    const plot = lossChart()?.querySelector('.js-plotly-plot');
    if (!plot || !plot.data || plot.data.length < 2) return 0;
    const x = plot.data[1].x;  // an array, or Plotly's typed-array form {dtype, bdata}
    if (x.bdata === undefined) return x.length ? x[x.length - 1] : 0;
    const types = {f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array,
                   i2: Int16Array, u2: Uint16Array, i1: Int8Array, u1: Uint8Array};
    const bytes = Uint8Array.from(atob(x.bdata), c => c.charCodeAt(0));
    const values = new (types[x.dtype] || Float64Array)(bytes.buffer);
    return values.length ? values[values.length - 1] : 0;
  };
  let replaced = 0;
  const observer = new MutationObserver(records => {
    for (const r of records) for (const n of r.addedNodes)
      if (n.nodeType === 1 && (n.matches?.('.js-plotly-plot') || n.querySelector?.('.js-plotly-plot')))
        replaced++;
  });
  observer.observe(document.body, {childList: true, subtree: true});
  const changes = [];
  let last = points();
  const start_points = last;
  const start = performance.now();
  while (performance.now() - start < ms) {
    await new Promise(r => setTimeout(r, 25));
    const now = points();
    if (now !== last) { changes.push([performance.now() - start, now]); last = now; }
  }
  observer.disconnect();
  return {changes, replaced, start: start_points, last};
}"""


def set_steps(page, presses: int, key: str = "ArrowLeft") -> None:
    """Move the Steps slider by keyboard (each press is one notch: 2,000 -> 1,000 -> 500)."""
    thumb = page.get_by_test_id("stSlider").filter(has_text="Steps").get_by_role("slider")
    thumb.focus()
    for _ in range(presses):
        thumb.press(key)
    page.wait_for_timeout(500)


def draw(page, strokes) -> float:
    """Draw ``strokes`` (lists of (x, y) in canvas pixels) with the mouse; return the
    time.perf_counter() of the last mouse-up."""
    canvas = page.locator("canvas.upper-canvas").first
    box = canvas.bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()
        released = time.perf_counter()
    return released


def wait_for_metric_change(page, label: str, old: str, timeout: float = 15.0) -> tuple[str, float]:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = metric_value(page, label)
        if value != old:
            return value, time.perf_counter()
        page.wait_for_timeout(10)
    raise AssertionError(f"{label} stayed {old!r} for {timeout} s")


def test_every_page_renders_without_an_exception(page, screenshot):
    links = page.get_by_test_id("stSidebarNavLink")
    assert [t.split("\n")[-1] for t in links.all_inner_texts()][:4] == ["Model", "Train", "Weights", "Test"]
    assert_no_exception(page)
    screenshot(page, "model", height=1250)
    for name in ("Train", "Weights", "Test", "Model"):
        go(page, name)
        page.get_by_text("Steps trained").first.wait_for()  # the sidebar status, on every page
        assert_no_exception(page)


@pytest.mark.slow
def test_live_training_curve_and_weights_during_the_run(page, screenshot):
    go(page, "Train")
    # 20,000 steps: still running when we reach Weights however fast the machine (Stop ends it)
    set_steps(page, 3, key="ArrowRight")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Training: step").wait_for()
    watch = page.evaluate(WATCH_LOSS_CHART, 5000)
    # (while Plotly redraws, the chart can briefly report no data: those reads are skipped)
    growth = [n for _, n in watch["changes"] if n > 0]
    assert growth and growth[-1] > max(watch["start"], growth[0]), f"the curve did not grow: {watch}"
    times = [t for t, n in watch["changes"] if n > 0]
    rate = (len(times) - 1) / ((times[-1] - times[0]) / 1000) if len(times) > 1 else 0.0
    record("loss_chart_updates_per_second", round(rate, 2))
    record("loss_chart_dom_replacements_in_5s", watch["replaced"])
    assert rate >= 0.5, f"the loss curve updated only {rate:.2f} times a second: {watch}"
    assert_no_exception(page)
    screenshot(page, "train", height=1250)

    go(page, "Weights")  # the run keeps going while we look at its weights
    page.get_by_text("refreshed every").wait_for()
    charts = page.get_by_test_id("stPlotlyChart")
    charts.nth(3).wait_for()
    assert charts.count() >= 4
    assert page.get_by_text("The 256 neurons of layer 1").count() >= 1
    assert "of 20,000 steps" in page.get_by_test_id("stSidebar").inner_text()  # still training
    assert_no_exception(page)
    screenshot(page, "weights", height=1500)

    go(page, "Train")
    if page.get_by_role("button", name="Stop", exact=True).is_enabled():
        page.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("Press Train").first.wait_for()  # the run's end notice (stopped or finished)
    speed = metric_value(page, "Speed (images/s)")
    record("dashboard_images_per_second", float(speed.replace(",", "")))
    assert int(metric_value(page, "Steps trained").replace(",", "")) > 0
    assert_no_exception(page)

    go(page, "Weights")  # after training, what changed shows the strokes each neuron learned
    page.get_by_text("Show the change since the start").click()
    page.get_by_text("how its weights changed").wait_for()
    assert_no_exception(page)
    screenshot(page, "weights_change", height=1300)


@pytest.mark.slow
def test_draw_a_digit_and_see_the_prediction(page, screenshot):
    go(page, "Train")
    set_steps(page, 2)  # 2,000 -> 500 steps: enough for a network that reads a clear "1"
    assert page.get_by_test_id("stSlider").filter(has_text="Steps").get_by_text("500").count()
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Finished: trained 500 steps").first.wait_for(timeout=90_000)

    go(page, "Test")
    page.locator("canvas.upper-canvas").first.wait_for()
    assert metric_value(page, "Prediction") == "–"
    latencies = []
    released = draw(page, [[(140, 40 + 10 * i) for i in range(21)]])  # a vertical stroke: "1"
    value, seen = wait_for_metric_change(page, "Prediction", "–")
    latencies.append(seen - released)
    assert value == "1", f"a clear 1 was read as {value}"
    page.get_by_text("28 × 28, as the network receives it").wait_for()  # the preprocessed image
    assert_no_exception(page)
    for _ in range(4):  # clear and draw again: more latency samples
        page.get_by_role("button", name="Clear").click()
        page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMetric"]')]
            .some(m => m.textContent.includes('Prediction') && m.textContent.includes('–'))""")
        page.locator("canvas.upper-canvas").first.wait_for()
        page.wait_for_timeout(300)
        # a 7 in one stroke (a second stroke would send its own, earlier drawing first)
        released = draw(page, [[(90, 60), (140, 60), (190, 60), (160, 140), (130, 230)]])
        _, seen = wait_for_metric_change(page, "Prediction", "–")
        latencies.append(seen - released)
    record("stroke_to_prediction_ms", [round(1000 * t) for t in latencies])
    record("stroke_to_prediction_median_ms", round(1000 * statistics.median(latencies)))
    record("stroke_to_prediction_median_after_first_ms", round(1000 * statistics.median(latencies[1:])))
    assert statistics.median(latencies) < 3.0
    page.wait_for_timeout(500)
    screenshot(page, "test", height=1250)
    assert_no_exception(page)


@pytest.mark.slow
def test_closing_the_tab_during_a_run_stops_training(browser):
    """A closed tab is a dropped connection at first: the run goes on for the reconnect
    window (MLP_LAB_RECONNECT_SECONDS, 4 s here instead of 120), in case the browser comes
    back; then it stops, its thread ends and the lab is saved and leaves memory."""
    server = Server(env={"MLP_LAB_RECONNECT_SECONDS": "4"})
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.url)
        go(page, "Train")
        set_steps(page, 1, key="End")  # the biggest run: it would go on for a long time
        offset = len(server.log())
        page.get_by_role("button", name="Train", exact=True).click()
        page.get_by_text("Training: step").wait_for()
        server.wait_for_log("run started", after=offset)
        closed = time.monotonic()  # (before the close: the server may see it go before close() returns)
        context.close()  # the tab goes away mid-run
        # Right after the close the run goes on: watched for 2 s (an absence takes a while).
        while time.monotonic() - closed < 2.0:
            assert "session closed" not in server.log()[offset:], "the run stopped as the tab closed"
            assert server.trainers()["running"] == 1
            time.sleep(0.1)
        log = server.wait_for_log("session closed: stopped the run", timeout=4 + 15, after=offset)
        stopped_after = time.monotonic() - closed
        assert "thread alive: False" in log.split("session closed")[-1].splitlines()[0]
        server.wait_for_log("run ended: stopped", after=offset)
        server.wait_for_log("left memory", after=offset)
        record("run_stopped_after_tab_closed_s", round(stopped_after, 2))
        assert stopped_after >= 4.0, f"stopped {stopped_after:.1f} s after the close, before the window"
    finally:
        context.close()
        server.stop()


def test_save_and_load_models(page, tmp_path):
    page.get_by_role("heading", name="Files").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download model (.npz)").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(".npz") and saved.stat().st_size > 100_000

    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"definitely not a model")
    page.locator("input[type=file]").set_input_files(str(bad))
    page.get_by_text("not a valid MLP Lab model").wait_for()
    assert page.get_by_text("Your current model is unchanged").count() == 1
    assert_no_exception(page)

    page.locator("input[type=file]").set_input_files(str(saved))
    page.get_by_text(f"Loaded {saved.name}").wait_for()
    assert_no_exception(page)

    # My models: keep it under a name, see it listed, download the kept copy
    page.get_by_role("textbox", name="Name").fill("from the browser")
    page.get_by_role("button", name="Keep this model").click()
    page.get_by_text("Kept as “from the browser”").wait_for()
    page.get_by_test_id("stDataFrame").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download", exact=True).click()
    assert download.value.suggested_filename == "from the browser.npz"
    kept = tmp_path / "kept.npz"
    download.value.save_as(kept)
    assert kept.read_bytes()[:2] == b"PK" and kept.stat().st_size > 100_000
    assert_no_exception(page)
