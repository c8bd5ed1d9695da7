"""A student's lab survives what a classroom does to it, in a real browser on real servers:
a reload (F5), a short network drop (through a TCP proxy that resets every connection), a
server killed with SIGKILL and started again on the same store, and a second browser
that must never see the first one's model.

Most tests here share one student (context A), trained once by the ``lab`` fixture on a
server with its own data folder. The tests that kill that server start the next one on
the same folder and hand it on (``Lab.restart``), so the student's lab goes from test to
test as it would through a lesson. The drop has a server of its own: its log must show
nothing closing, and no other student may write there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from charts import array_values
from loadtest.server import Server
from mlp_lab.store import LabRecord, SQLiteStore

from browser_ui import assert_no_exception, go, metric_value, open_page, record, save_screenshot
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/persist-shots")  # what the page looked like at each step, to look at after a failure
STUDENT_COOKIE = "mlp_lab_student"
WELCOME = "Welcome back: your Dense MLP 784-256-128-10 (relu), 2,000 steps."
INTERRUPTED = "A run was going when the server stopped"

# JavaScript: the traces of the Train page's loss chart as Plotly holds them in the page
# (x and y in Plotly's typed-array form {dtype, bdata} or as lists), null before it is drawn.
LOSS_TRACES = """() => {
  const chart = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
      .find(el => el.textContent.includes('Loss: how wrong'));
  const plot = chart?.querySelector('.js-plotly-plot');
  if (!plot || !plot.data) return null;
  const plain = v => (ArrayBuffer.isView(v) ? Array.from(v) : v);
  return plot.data.map(trace => ({name: trace.name, x: plain(trace.x), y: plain(trace.y)}));
}"""


# --- reading the page ------------------------------------------------------------------------
def steps_trained(page) -> int:
    return int(metric_value(page, "Steps trained").replace(",", ""))


def loss_curve(page, last_step: int, timeout: float = 30.0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The loss chart's traces, decoded: ``[(name, steps, losses), ...]``, once the curve
    reaches ``last_step`` (the chart redraws a moment after the metrics)."""
    deadline = time.monotonic() + timeout
    traces = None
    while time.monotonic() < deadline:
        traces = page.evaluate(LOSS_TRACES)
        if traces and len(traces) == 2:
            decoded = [(t["name"], array_values(t["x"]), array_values(t["y"])) for t in traces]
            if len(decoded[0][1]) and decoded[0][1][-1] == last_step:
                return decoded
        page.wait_for_timeout(100)
    raise AssertionError(f"the loss curve did not reach step {last_step} in {timeout} s: {traces!r:.300}")


def assert_same_curve(got, expected) -> None:
    assert [name for name, _, _ in got] == [name for name, _, _ in expected]
    for (name, x, y), (_, x0, y0) in zip(got, expected):
        assert np.array_equal(x, x0), f"{name}: other steps"
        assert np.array_equal(y, y0), f"{name}: other losses (max difference {np.max(np.abs(y - y0))})"


def toasts(page, containing: str = "") -> list[str]:
    """The texts of the toasts on the page now (those that contain ``containing``)."""
    return [text for text in page.get_by_test_id("stToastText").all_inner_texts() if containing in text]


def wait_for_toast(page, containing: str, timeout: float = 30.0) -> str:
    page.get_by_test_id("stToastText").filter(has_text=containing).first.wait_for(timeout=timeout * 1000)
    return toasts(page, containing)[0]


def close_toasts(page) -> None:
    """Close every toast and wait until they are gone."""
    for button in page.locator('[data-testid="stToast"] button[aria-label="Close"]').all():
        try:
            button.click(timeout=2000)
        except Exception:  # noqa: BLE001 (it went away by itself meanwhile)
            pass
    page.wait_for_function("""() => document.querySelectorAll('[data-testid="stToast"]').length === 0""")


def student_cookie(context, timeout: float = 30.0) -> str:
    """This browser's student id (the page's script writes the cookie after its first run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for cookie in context.cookies():
            if cookie["name"] == STUDENT_COOKIE:
                return cookie["value"]
        time.sleep(0.1)
    raise AssertionError(f"no {STUDENT_COOKIE} cookie after {timeout} s: {context.cookies()}")


def shot(page, name: str) -> None:
    save_screenshot(page, name, folder=SHOTS)


def train_button(page):
    return page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Train", exact=True)


def stop_button(page):
    """The Train page's Stop (not Streamlit's own "Stop" in the header while a script runs)."""
    return page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop", exact=True)


def start_long_run(page) -> None:
    """The Steps slider at its top (50,000 steps: longer than any test waits), then Train."""
    go(page, "Train")
    thumb = page.get_by_test_id("stSlider").filter(has_text="Steps").get_by_role("slider")
    thumb.focus()
    thumb.press("End")
    page.get_by_test_id("stSlider").filter(has_text="Steps").get_by_text("50,000").first.wait_for()
    train_button(page).click()
    page.get_by_text("Training: step").wait_for()


def wait_for_steps(page, above: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = steps_trained(page)
        if steps > above:
            return steps
        page.wait_for_timeout(100)
    raise AssertionError(f"Steps trained stayed at {steps_trained(page)}, not above {above}, for {timeout} s")


def wait_for_record(store: SQLiteStore, student_id: str, check, timeout: float = 30.0) -> LabRecord:
    """The student's saved lab once ``check(record)`` holds (the saver thread writes it)."""
    deadline = time.monotonic() + timeout
    record_ = None
    while time.monotonic() < deadline:
        record_ = store.load_lab(student_id)
        if record_ is not None and check(record_):
            return record_
        time.sleep(0.1)
    saved = record_ and (record_.steps, record_.settings)
    raise AssertionError(f"the store did not get the expected record in {timeout} s; it has {saved}")


# --- one student's lab, handed from test to test --------------------------------------------------
@dataclass
class Lab:
    """Student A on a server with its own store: trained 2,000 steps by the fixture."""

    data_dir: Path
    server: Server
    context: object
    page: object
    student_id: str
    curve: list  # the loss curve after the 2,000 steps (loss_curve)

    @property
    def store(self) -> SQLiteStore:
        return SQLiteStore(self.data_dir)

    def restart(self) -> float:
        """SIGKILL the server, start a new one on the same store; its start in seconds."""
        self.server.process.kill()
        self.server.process.wait(10)
        self.server.stop()  # its status folder (the store is elsewhere)
        started = time.monotonic()
        self.server = Server(env={"MLP_LAB_DATA_DIR": str(self.data_dir)})
        return time.monotonic() - started


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("store")
    server = Server(env={"MLP_LAB_DATA_DIR": str(data_dir)})
    context, page = open_page(browser, server.url)
    held = Lab(data_dir, server, context, page, student_id="", curve=[])
    try:
        held.student_id = student_cookie(context)
        go(page, "Train")
        assert toasts(page, "Welcome back") == []  # a first visit: nothing to welcome back
        train_button(page).click()  # the default 2,000 steps
        page.get_by_text("Finished: trained 2,000 steps").first.wait_for(timeout=120_000)
        assert steps_trained(page) == 2000
        held.curve = loss_curve(page, 2000)
        # The end of a run is saved at once (the saver thread): wait for it in the file.
        wait_for_record(held.store, held.student_id, lambda r: r.steps == 2000 and not r.settings["running"])
        assert held.store.usage().lab_records == 1
        yield held
    finally:
        context.close()
        held.server.stop()  # the last one started (the tests restart it)


# --- the tests --------------------------------------------------------------------------------------
def test_a_reload_brings_back_the_same_model_and_one_welcome(lab):
    page = lab.page
    go(page, "Train")
    before = steps_trained(page)
    assert before == 2000
    close_toasts(page)

    started = time.monotonic()
    page.reload()  # F5: a new Streamlit session for the same browser
    page.get_by_role("heading", name="Train", exact=True).first.wait_for()
    assert wait_for_toast(page, "Welcome back") == WELCOME
    page.get_by_test_id("stMetric").filter(has_text="Steps trained").first.wait_for()
    assert steps_trained(page) == 2000
    assert_same_curve(loss_curve(page, 2000), lab.curve)
    record("reload_to_restored_page_s", round(time.monotonic() - started, 2))
    assert len(toasts(page, "Welcome back")) == 1
    assert student_cookie(lab.context) == lab.student_id
    assert_no_exception(page)
    shot(page, "reload_restored")

    close_toasts(page)  # the welcome is said once per browser session, not on every page
    for name in ("Model", "Weights", "Train"):
        go(page, name)
        page.get_by_test_id("stSidebar").get_by_text("Steps trained").first.wait_for()
        # The toast would come before the page (get_lab runs first): the page is there, no toast.
        assert toasts(page) == [], f"a toast again on {name}: {toasts(page)}"
    assert steps_trained(page) == 2000
    assert_no_exception(page)


def test_a_second_browser_never_sees_the_first_ones_model(lab, browser):
    go(lab.page, "Train")
    a_steps = steps_trained(lab.page)
    assert a_steps >= 2000
    b_context, b = open_page(browser, lab.server.url)
    try:
        b_id = student_cookie(b_context)
        assert b_id != lab.student_id
        assert "Steps trained: 0" in b.get_by_test_id("stSidebar").inner_text()
        go(b, "Train")
        assert steps_trained(b) == 0
        assert b.get_by_text("has not learned anything yet").count() == 1
        assert toasts(b) == [], f"a new browser was welcomed back: {toasts(b)}"
        assert loss_curve_points(b) == 0
        assert_no_exception(b)
        shot(b, "second_browser")
        # ...and A still has its own model.
        assert steps_trained(lab.page) == a_steps
        assert f"Steps trained: {a_steps:,}" in lab.page.get_by_test_id("stSidebar").inner_text()
    finally:
        b_context.close()


def loss_curve_points(page) -> int:
    """The number of points of the loss chart (0: the empty chart of an untrained model)."""
    page.get_by_test_id("stPlotlyChart").filter(has_text="Loss: how wrong").first.wait_for()
    traces = page.evaluate(LOSS_TRACES) or []
    return sum(len(array_values(t["x"])) for t in traces if t.get("x") is not None)


@pytest.mark.slow
def test_a_killed_server_restarted_on_the_same_store_brings_the_model_back(lab):
    saved = lab.store.load_lab(lab.student_id)
    assert saved is not None and saved.steps == 2000 and not saved.settings["running"]
    restarted = time.monotonic()
    server_start = lab.restart()  # SIGKILL: no last save, no goodbye; then the same data folder
    page = lab.page  # the same browser: its cookie (per host, not per port) goes to the new port
    page.goto(lab.server.url)
    assert wait_for_toast(page, "Welcome back", timeout=60) == WELCOME
    page.get_by_test_id("stSidebar").get_by_text("Steps trained: 2,000").first.wait_for()
    record("restart_server_start_s", round(server_start, 2))
    record("restart_to_restored_page_s", round(time.monotonic() - restarted, 2))
    assert student_cookie(lab.context) == lab.student_id
    go(page, "Train")
    assert steps_trained(page) == 2000
    assert_same_curve(loss_curve(page, 2000), lab.curve)
    assert train_button(page).is_enabled()
    assert "back at step" not in lab.server.log()  # no run was going: not "cut off"
    assert_no_exception(page)
    shot(page, "restart_restored")


@pytest.mark.slow
def test_a_run_going_when_the_server_is_killed_comes_back_stopped_at_its_last_save(lab):
    page = lab.page
    go(page, "Train")
    before = steps_trained(page)
    close_toasts(page)
    start_long_run(page)
    # The saver writes a running lab every MLP_LAB_SAVE_SECONDS (5): wait for such a save...
    store = lab.store
    autosaved = wait_for_record(store, lab.student_id, lambda r: r.settings["running"] and r.steps > before)
    # ...and until the page shows more steps than it holds, then kill at once (the next save is
    # seconds away, so what the page shows is an upper bound of what the file will hold).
    at_kill = wait_for_steps(page, autosaved.steps)
    restarted = time.monotonic()
    lab.server.process.kill()
    last = store.load_lab(lab.student_id)  # what the killed server left in the file
    assert last.settings["running"] and before < last.steps <= at_kill, (before, last.steps, at_kill)
    server_start = lab.restart()

    page.goto(lab.server.url + "/train")
    page.get_by_role("heading", name="Train", exact=True).first.wait_for(timeout=60_000)
    welcome = wait_for_toast(page, "Welcome back", timeout=60)
    record("restart_mid_run_to_restored_page_s", round(time.monotonic() - restarted, 2))
    record("restart_mid_run_server_start_s", round(server_start, 2))
    record("steps_lost_by_the_kill_at_most", at_kill - last.steps)
    assert welcome.startswith(f"Welcome back: your Dense MLP 784-256-128-10 (relu), {last.steps:,} steps.")
    assert INTERRUPTED in welcome
    page.get_by_test_id("stMetric").filter(has_text="Steps trained").first.wait_for()
    assert steps_trained(page) == last.steps
    assert before < steps_trained(page) <= at_kill
    # Back stopped: nothing trains until the student presses Train.
    assert train_button(page).is_enabled()
    assert stop_button(page).is_disabled()
    assert page.get_by_text("Training: step").count() == 0
    assert "Not training" in page.get_by_test_id("stSidebar").inner_text()
    assert lab.server.trainers()["running"] == 0
    assert f"back at step {last.steps}, its run was cut off" in lab.server.log()
    assert_no_exception(page)
    shot(page, "restart_mid_run_restored")


@pytest.mark.slow
def test_a_three_second_connection_drop_changes_nothing(browser):
    server = Server()
    proxy = TcpProxy(server.port)
    context = None
    try:
        context, page = open_page(browser, proxy.url)  # every byte goes through the proxy
        frames = []  # (time.monotonic(), websocket url) of the first frame each websocket got

        def on_websocket(ws):
            def first_frame(_payload):
                if not any(w is ws for _, w in frames):
                    frames.append((time.monotonic(), ws))
            ws.on("framereceived", first_frame)

        page.on("websocket", on_websocket)
        start_long_run(page)
        at_cut = wait_for_steps(page, 100)  # well under way
        page.evaluate("() => { window.beforeTheCut = true; }")  # gone if the page reloads
        offset = len(server.log())

        cut = time.monotonic()
        reset = proxy.cut(3.0)  # every connection reset (RST); new ones reset for 3 s
        assert reset >= 1
        status = page.get_by_test_id("stStatusWidget")
        status.filter(has_text="onnecting").first.wait_for(timeout=10_000)  # the page saw it
        shot(page, "drop_connecting")
        seen = [(time.monotonic() - cut, at_cut)]
        while True:  # until the page shows steps trained past the cut again
            elapsed = time.monotonic() - cut
            assert elapsed < 60, f"the page did not come back in 60 s: steps seen {seen}"
            steps = steps_trained(page)
            seen.append((elapsed, steps))
            if steps > at_cut and status.filter(has_text="onnecting").count() == 0:
                break
            page.wait_for_timeout(100)
        back = time.monotonic() - cut
        reconnected = [t - cut for t, _ in frames if t > cut]
        assert reconnected, "no websocket got a message after the cut: the page did not reconnect"
        assert min(reconnected) >= 3.0 - 0.1  # nothing went through the proxy while it dropped everything
        assert page.evaluate("() => window.beforeTheCut === true"), "the page reloaded"
        record("drop_reconnect_s", round(min(reconnected), 2))
        record("drop_cut_to_fresh_steps_s", round(back, 2))
        record("drop_steps_gained", steps - at_cut)
        record("drop_connections_refused", proxy.refused)
        shot(page, "drop_back")

        later = wait_for_steps(page, steps)  # it keeps training after the reconnect too
        seen.append((time.monotonic() - cut, later))
        values = [s for _, s in seen]
        assert all(b >= a for a, b in zip(values, values[1:])), f"steps went back: {seen}"
        assert min(values) >= at_cut > 0
        assert page.get_by_text("Training: step").count() == 1
        log = server.log()[offset:]
        for line in ("session closed", "left memory", "run started", "run ended"):
            assert line not in log, f"{line!r} in the server log since the cut:\n{log}"
        assert_no_exception(page)

        stop_button(page).click()  # keep the suite fast
        page.get_by_text("Press Train").first.wait_for()
        server.wait_for_log("run ended: stopped", after=offset)
        assert "session closed" not in server.log()[offset:]
    finally:
        if context is not None:
            context.close()
        proxy.close()
        server.stop()
