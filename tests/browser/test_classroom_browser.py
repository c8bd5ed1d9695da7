"""A classroom server in a real browser: tabs that close, reloads, two students at once, the
waiting line for a trainer, and a small load test.

The server here is started with ``MLP_LAB_MAX_RUNS=1`` (one trainer for everybody, so a
second run must wait) and ``MLP_LAB_STATUS_DIR`` (it writes its count of live training
threads to ``trainers.json``, which the tests read from outside the server process), and
``MLP_LAB_RECONNECT_SECONDS=4``: the run of a tab that closed goes on that long in case the
browser comes back (120 s by default), then stops.
"""

from __future__ import annotations

import time

import pytest

from loadtest.server import Server

from browser_ui import assert_no_exception, go, metric_value, open_page, record

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def class_server(chromium_path):
    server = Server(max_runs=1, env={"MLP_LAB_RECONNECT_SECONDS": str(RECONNECT_SECONDS)})
    yield server
    server.stop()


RECONNECT_SECONDS = 4
GONE_SECONDS = RECONNECT_SECONDS + 10  # a closed tab's run: the reconnect window, then stopped


def open_student(browser, server):
    return open_page(browser, server.url)


def wait_threads(server, count: int, timeout: float) -> float:
    """Seconds until the server has ``count`` live training threads (fails after timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.trainers()["threads"] == count:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"still {server.trainers()} after {timeout} s, expected {count} threads")


def press_train(page, steps_key: str | None = "End") -> None:
    go(page, "Train")
    if steps_key:  # the biggest run: it would go on for a long time
        thumb = page.get_by_test_id("stSlider").filter(has_text="Steps").get_by_role("slider")
        thumb.focus()
        thumb.press(steps_key)
        page.wait_for_timeout(500)
    page.get_by_role("button", name="Train", exact=True).click()


def stop_button(page):
    """The Train page's Stop (not Streamlit's own "Stop" in the header while a script runs)."""
    return page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop", exact=True)


def test_closing_the_tab_ends_its_training_thread(browser, class_server):
    context, page = open_student(browser, class_server)
    press_train(page)
    page.get_by_text("Training: step").wait_for()
    assert class_server.trainers()["threads"] == 1
    context.close()
    time.sleep(1.5)
    assert class_server.trainers()["threads"] == 1  # it may come back: the run goes on a while
    gone = 1.5 + wait_threads(class_server, 0, GONE_SECONDS)
    assert gone >= RECONNECT_SECONDS
    record("thread_gone_after_tab_closed_s", round(gone, 2))


def test_a_reload_mid_run_finds_the_same_run_going_and_leaves_no_orphan(browser, class_server):
    context, page = open_student(browser, class_server)
    try:
        press_train(page)
        page.get_by_text("Training: step").wait_for()
        page.reload()  # F5 mid-run: a new session of the same browser (its cookie), same lab
        page.get_by_role("heading", name="Train", exact=True).first.wait_for()
        page.get_by_text("Training: step").first.wait_for()  # still training, shown live
        assert "Training" in page.get_by_test_id("stSidebar").inner_text()
        assert class_server.trainers()["threads"] == 1  # one run, not a second one
        stop_button(page).click()
        gone = wait_threads(class_server, 0, 10)
        record("thread_gone_after_stop_after_reload_s", round(gone, 2))
        assert_no_exception(page)
    finally:
        context.close()


def test_two_students_never_see_each_others_work(browser, class_server):
    a_context, a = open_student(browser, class_server)
    b_context, b = open_student(browser, class_server)
    try:
        press_train(a, steps_key="Home")  # 100 steps
        a.get_by_text("Finished: trained 100 steps").first.wait_for(timeout=60_000)
        go(a, "Test")  # A draws a digit
        canvas = a.locator("canvas.upper-canvas").first
        box = canvas.bounding_box()
        a.mouse.move(box["x"] + 140, box["y"] + 40)
        a.mouse.down()
        a.mouse.move(box["x"] + 140, box["y"] + 240, steps=10)
        a.mouse.up()
        a.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMetric"]')]
            .some(m => m.textContent.includes('Prediction') && /[0-9]/.test(m.textContent.split('Prediction')[1]))""")

        go(b, "Train")  # B sees its own, untrained network: no steps, no curve, no drawing
        assert "Steps trained: 0" in b.get_by_test_id("stSidebar").inner_text()
        assert metric_value(b, "Steps trained") == "0"
        assert b.get_by_text("has not learned anything yet").count() == 1
        go(b, "Test")
        assert metric_value(b, "Prediction") == "–"
        assert "Steps trained: 100" in a.get_by_test_id("stSidebar").inner_text()
        assert_no_exception(a)
        assert_no_exception(b)
    finally:
        a_context.close()
        b_context.close()
    wait_threads(class_server, 0, GONE_SECONDS)


def test_a_second_run_waits_for_a_free_trainer_and_starts_on_its_own(browser, class_server):
    a_context, a = open_student(browser, class_server)
    b_context, b = open_student(browser, class_server)
    try:
        press_train(a)
        a.get_by_text("Training: step").wait_for()
        press_train(b, steps_key="Home")
        b.get_by_text("Waiting for a free trainer").first.wait_for()
        assert b.get_by_text("you are next in line").count() == 1
        assert "Waiting for a free trainer" in b.get_by_test_id("stSidebar").inner_text()
        assert stop_button(b).is_enabled()  # Stop leaves the line
        assert class_server.trainers() | {"time": 0, "pid": 0} == {
            "threads": 2, "running": 1, "waiting": 1, "limit": 1, "time": 0, "pid": 0}
        stop_button(a).click()  # A frees the trainer
        # B's run starts by itself: nobody touches B's page
        b.get_by_text("Finished: trained 100 steps").first.wait_for(timeout=60_000)
        assert b.get_by_text("Waiting for a free trainer").count() == 0
        assert_no_exception(b)
    finally:
        a_context.close()
        b_context.close()
    wait_threads(class_server, 0, GONE_SECONDS)
