"""The teaching pages in a real browser: a lesson in one click and its link, the ladder
trained in the background, the A/B preprocessing view and the saliency on a drawing.
Takes the lesson_*.png screenshots for the README's "A 10-minute lesson" (into a temporary
folder; into docs/screenshots with --update-screenshots)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from browser_ui import assert_no_exception, go, metric_value
from test_dashboard import draw, set_steps

pytestmark = pytest.mark.browser


def query(page) -> dict:
    return page.evaluate("() => Object.fromEntries(new URLSearchParams(location.search))")


def test_a_lesson_in_one_click_and_its_link(page, screenshot, browser, server):
    go(page, "Lessons")
    page.locator(".st-key-lesson_dense button").first.wait_for()  # the sixth and last
    page.locator(".st-key-lesson_notebook button").first.click()
    page.get_by_text("is set up").wait_for()
    page.wait_for_function("() => location.search.includes('lesson=notebook')")
    params = query(page)
    assert params["model"] == "notebook" and params["loss"] == "mse" and params["batch"] == "1"
    assert "Notebook net" in page.get_by_test_id("stSidebar").inner_text()
    assert_no_exception(page)
    screenshot(page, "lesson_start", height=1300)

    # A student opens the link the teacher handed out: the same settings, their own model.
    link = page.evaluate("() => location.href")
    context = browser.new_context()
    student = context.new_page()
    student.set_default_timeout(30_000)
    student.goto(link)
    student.get_by_text("Settings from the link").first.wait_for()
    assert "Notebook net" in student.get_by_test_id("stSidebar").inner_text()
    assert "Steps trained: 0" in student.get_by_test_id("stSidebar").inner_text()
    assert query(student) == params
    # and a short link to a lesson sets up everything that lesson needs
    student.goto(f"{server.url}/?lesson=adam")
    student.get_by_text("Settings from the link").first.wait_for()
    go(student, "Model")
    current = student.get_by_test_id("stAlert").filter(has_text="Current model").inner_text()
    assert "Notebook net" in current and "Adam" in current, current
    assert query(student)["lesson"] == "adam" and query(student)["opt"] == "adam"
    context.close()


@pytest.mark.slow
def test_notebook_vs_modern_ladder(page, screenshot):
    go(page, "Notebook vs modern")
    # the default, as the README's lesson says: 2,000 steps each, one run of the notebook's
    # cell (the whole ladder in ~20 s on a quiet machine)
    page.get_by_test_id("stSlider").filter(has_text="Steps for every network").get_by_test_id(
        "stSliderThumbValue").get_by_text("2,000").wait_for()
    page.get_by_role("button", name="Train all six").click()
    # the fragment polls the background worker; at the end the table lists all six rungs
    page.get_by_test_id("stPlotlyChart").get_by_text("6 · A modern network").first.wait_for(
        timeout=400_000)  # a busy shared machine can be 10x slower
    page.get_by_role("button", name="Train all six").and_(page.locator(":enabled")).wait_for()
    page.get_by_test_id("stTable").wait_for()  # a table: its "change" column wraps, never cut
    assert_no_exception(page)
    notebook, modern = [float(v.rstrip("%")) for v in
                        page.get_by_test_id("stMetric").filter(has_text="Test accuracy")
                        .get_by_test_id("stMetricValue").all_inner_texts()]
    assert notebook < 25 and modern > 90
    screenshot(page, "lesson_compare", height=2300)
    page.get_by_role("button", name="Re-run the notebook's cell 10 times").click()
    page.get_by_text("The notebook after 10 runs of its cell").wait_for(timeout=300_000)
    rerun = float(metric_value(page, "The notebook after 10 runs").rstrip("%"))
    assert rerun > 30  # about 60 %: the long, flat start, then the climb
    assert_no_exception(page)


@pytest.mark.slow
def test_why_this_answer_ab_and_saliency_on_a_drawing(page, screenshot):
    go(page, "Lessons")
    page.locator(".st-key-lesson_dense button").first.click()
    page.get_by_text("is set up").wait_for()
    go(page, "Train")
    set_steps(page, 2)  # 500 steps: a dense network that reads clear digits
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Finished: trained 500 steps").first.wait_for(timeout=90_000)

    go(page, "Why this answer")
    page.locator("canvas.upper-canvas").first.wait_for()
    # a small 7 in the top-left corner: squeezing the whole box (A) keeps it tiny and
    # off-centre; MNIST-style (B) cuts it out, scales it up and centres it
    draw(page, [[(18, 22), (45, 22), (72, 22), (56, 62), (40, 102)]])
    page.get_by_text("B · MNIST-style: answer").first.wait_for()
    assert metric_value(page, "B · MNIST-style: answer") == "7"
    page.get_by_text("Why: which pixels decided it").wait_for()
    page.get_by_text("% of the colour is red").wait_for()
    page.get_by_text("neurons fire").first.wait_for()
    page.wait_for_timeout(800)
    assert_no_exception(page)
    screenshot(page, "lesson_why", height=2000)
    page.get_by_text("Occlusion (hide a square)").click()
    page.wait_for_timeout(1500)
    assert_no_exception(page)

    go(page, "Inside the network")  # one step of the trained network, taken apart
    page.get_by_text("Loss on this batch").first.wait_for()
    page.get_by_test_id("stPlotlyChart").nth(5).wait_for()
    page.wait_for_timeout(800)
    assert_no_exception(page)
    screenshot(page, "lesson_inside", height=2000)


def test_replay_scrub_and_play(page, screenshot):
    go(page, "Replay")
    page.get_by_role("button", name="Record", exact=True).click()
    page.get_by_text("Recorded:").wait_for(timeout=60_000)
    page.get_by_test_id("stPlotlyChart").nth(1).wait_for()
    assert metric_value(page, "Step") == "0"
    # scrub by keyboard: End jumps to the last snapshot
    thumb = page.get_by_test_id("stSlider").filter(has_text="Snapshot").get_by_role("slider")
    thumb.focus()
    thumb.press("End")
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMetric"]')]
        .some(m => m.textContent.startsWith('Step') && m.textContent.includes('500'))""")
    page.get_by_role("button", name="Play", exact=True).click()  # from the end: starts again at 0
    seen = set()
    for _ in range(40):
        seen.add(metric_value(page, "Step"))
        if len(seen) >= 4:
            break
        page.wait_for_timeout(250)
    assert len(seen) >= 4, f"playing showed only the steps {seen}"
    page.get_by_role("button", name="Pause", exact=True).click()
    page.get_by_role("button", name="Play", exact=True).and_(page.locator(":enabled")).wait_for()
    page.wait_for_timeout(2000)  # let the charts of the paused frame draw
    assert_no_exception(page)
    screenshot(page, "lesson_replay", height=1700)


@pytest.mark.slow
def test_numpy_vs_keras_runs_to_the_end_in_a_real_server(page, screenshot, server):
    go(page, "NumPy vs Keras")
    page.get_by_text("What am I looking at?").first.wait_for()
    for label, value in (("Training images", "2,000"), ("Epochs", "2")):  # the defaults
        page.get_by_test_id("stSlider").filter(has_text=label).get_by_test_id(
            "stSliderThumbValue").get_by_text(value, exact=True).wait_for()
    offset = len(server.log())
    page.get_by_role("button", name="Run both").click()
    # TensorFlow loads in a child process (about 10 s here, far more on a busy machine)
    page.get_by_text("Do both compute the same gradients?").wait_for(timeout=600_000)
    page.get_by_role("button", name="Run both").and_(page.locator(":enabled")).wait_for()
    assert_no_exception(page)

    def metric_values(label):  # both sides' metric, once both are on screen: the page's
        # rerun after the job (it enables Run both) redraws them, so they may be gone a moment
        values = page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")
        for _ in range(100):
            texts = values.all_inner_texts()
            if len(texts) == 2:
                return texts
            page.wait_for_timeout(100)
        return texts

    seconds = [float(v) for v in metric_values("Seconds per epoch")]
    accuracy = [float(v.rstrip("%")) for v in metric_values("Accuracy on unseen images")]
    assert len(seconds) == 2 and all(s > 0 for s in seconds)
    assert all(a > 70 for a in accuracy) and abs(accuracy[0] - accuracy[1]) < 8  # the same learning
    page.get_by_text("Yes.", exact=True).wait_for()  # the gradients agree to rounding
    charts = page.get_by_test_id("stPlotlyChart")
    for title in ("Loss on each batch while training", "Seconds for each epoch",
                  "NumPy's (across) vs Keras' (up)"):
        charts.filter(has_text=title).first.wait_for()
    # both lines of the overlay are drawn
    loss_chart = charts.filter(has_text="Loss on each batch while training").first
    expect(loss_chart.locator("g.trace.scatter")).to_have_count(2)  # retried while redrawn
    expect(page.get_by_test_id("stDataFrame")).to_have_count(1)
    # TensorFlow stayed out of the server: it ran in the comparison's own process
    log = server.wait_for_log("(child process)", after=offset)
    assert "Keras comparison failed" not in log
    page.wait_for_timeout(1000)  # let the charts draw
    assert_no_exception(page)
    screenshot(page, "lesson_keras", height=1750)
