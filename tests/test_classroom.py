"""One server for a whole class, without a browser: the trainer limit and its waiting line,
the lifecycle of training threads, isolation between sessions, bounded memory, divergence
and the class configuration. The browser side (tabs closing, reloads, two students at once,
a small load test) is in tests/browser/test_classroom_browser.py.
"""

import json
import math
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mlp_core.persistence import model_from_bytes
from mlp_lab import config, figures, pool
from mlp_lab.session import clear_sessions, status_lines, waiting_text
from mlp_lab.shared_data import get_data
from mlp_lab.choices import ModelChoice
from mlp_lab.lab import LabSession

ROOT = Path(__file__).resolve().parents[1]
SMALL = ModelChoice(kind="dense", hidden=(16,), batch_size=32)


def wait_until(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(0.02)


@pytest.fixture
def labs():
    """Make labs on demand; every one is closed at the end, and no trainer thread is left."""
    made = []

    def make(choice=SMALL):
        lab = LabSession(choice)
        made.append(lab)
        return lab

    yield make
    for lab in made:
        lab.close()
    wait_until(lambda: pool.trainer_threads() == 0, 10, "no trainer threads left")


# --- the trainer limit --------------------------------------------------------------------
def test_default_limit_is_one_trainer_per_core_but_one(monkeypatch):
    import importlib

    cores = config.cpu_count()
    assert cores >= 1
    monkeypatch.delenv("MLP_LAB_MAX_RUNS", raising=False)
    fresh = importlib.reload(config)  # the default, as a server starting without the variable
    try:
        assert fresh.MAX_ACTIVE_RUNS == max(1, cores - 1)
        monkeypatch.setenv("MLP_LAB_MAX_RUNS", "7")
        assert importlib.reload(config).MAX_ACTIVE_RUNS == 7
        monkeypatch.setenv("MLP_LAB_MAX_RUNS", "lots")  # nonsense falls back to the default
        assert importlib.reload(config).MAX_ACTIVE_RUNS == max(1, cores - 1)
    finally:
        monkeypatch.delenv("MLP_LAB_MAX_RUNS")
        importlib.reload(config)


def test_further_runs_wait_in_line_and_start_on_their_own(labs, monkeypatch):
    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    first, second, third = labs(), labs(), labs()
    assert first.start(50_000) is None
    wait_until(lambda: first.status().running and not first.waiting, what="first run training")
    assert second.start(20) is None and third.start(20) is None  # queued, not refused
    wait_until(lambda: pool.waiting_runs() == 2, what="two runs waiting")
    s2, s3 = second.status(), third.status()
    assert s2.waiting and s2.running and s2.queue_position == 0 and s2.run_done == 0
    assert s3.waiting and s3.queue_position == 1
    assert "Waiting for a free trainer" in waiting_text(s2) and "next in line" in waiting_text(s2)
    assert "1 run of other students is ahead" in waiting_text(s3)
    assert any("Waiting for a free trainer" in line for line in status_lines(s2))
    assert pool.active_runs() == 1 and pool.trainer_threads() == 3
    assert second.trainer.step == 0 and third.trainer.step == 0  # nobody trains while waiting

    first.stop()  # a trainer is free: the line moves by itself, first come first served
    wait_until(lambda: not second.running and not third.running, what="queued runs done")
    assert second.trainer.step == 20 and third.trainer.step == 20
    # first come, first served: the second got the trainer first. (Compared by when each
    # began training, set right after it got the trainer; when each thread then noted its
    # end depends on the scheduler, since the trainer is given back before that.)
    assert second.run_info.started <= third.run_info.started
    assert pool.active_runs() == 0 and pool.waiting_runs() == 0


def test_stop_while_waiting_leaves_the_line(labs, monkeypatch):
    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    busy, queued = labs(), labs()
    busy.start(50_000)
    queued.start(100)
    wait_until(lambda: queued.waiting, what="waiting")
    queued.stop(wait=True)
    assert not queued.running and queued.trainer.step == 0
    kinds, texts = zip(*queued.pop_notices())
    assert "cancelled before a trainer became free" in texts[0]
    assert pool.waiting_runs() == 0 and pool.trainer_threads() == 1


def test_closing_a_waiting_session_ends_its_thread(labs, monkeypatch):
    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    busy, queued = labs(), labs()
    busy.start(50_000)
    queued.start(100)
    wait_until(lambda: queued.waiting, what="waiting")
    started = time.monotonic()
    queued.close()  # the tab closed while it waited
    assert not queued.running and time.monotonic() - started < 2
    assert queued.pop_notices() == []  # nobody is there to read it
    busy.close()
    assert pool.trainer_threads() == 0 and pool.active_runs() == 0


def test_a_replay_recording_waits_for_a_trainer_like_a_run(labs, monkeypatch):
    """Replay's Record trains in the background through the pool: with the only trainer
    busy it waits (the page's script thread is never blocked), then records on its own;
    a closed tab ends a recording that waits."""
    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    busy, student, leaver = labs(), labs(), labs()
    busy.start(50_000)
    wait_until(lambda: busy.status().running and not busy.waiting, what="the busy run training")
    started = time.monotonic()
    assert student.record_replay(100) is None
    assert time.monotonic() - started < 0.5  # it returned at once: nothing trained in this thread
    assert leaver.record_replay(100) is None
    wait_until(lambda: student.recording_waits and leaver.recording_waits, what="both waiting")
    assert pool.active_runs() == 1 and pool.waiting_runs() == 2 and pool.trainer_threads() == 3
    assert student.record_replay(100) is not None  # one recording at a time
    leaver.close()  # the tab closed while it waited
    assert not leaver.recording and leaver.replay is None
    busy.stop()
    wait_until(lambda: not student.recording, what="the recording done")
    assert student.replay is not None and student.replay.steps[-1] == 100
    assert student.trainer.step == 0  # a fresh copy trained, not the student's model
    assert pool.active_runs() == 0 and pool.waiting_runs() == 0


def test_trainer_threads_are_named_counted_and_published(labs, monkeypatch, tmp_path):
    import threading

    monkeypatch.setenv("MLP_LAB_STATUS_DIR", str(tmp_path))
    lab = labs()
    lab.start(50_000)
    wait_until(lambda: lab.status().running and not lab.waiting, what="running")
    names = [t.name for t in threading.enumerate() if t.name.startswith(pool.TRAINER_THREAD_PREFIX)]
    assert len(names) == 1
    counts = json.loads((tmp_path / "trainers.json").read_text())
    assert counts["threads"] == 1 and counts["running"] == 1 and counts["limit"] == config.MAX_ACTIVE_RUNS
    lab.close()
    counts = json.loads((tmp_path / "trainers.json").read_text())
    assert counts["threads"] == 0 and counts["running"] == 0 and counts["waiting"] == 0
    assert not [t for t in threading.enumerate() if t.name.startswith(pool.TRAINER_THREAD_PREFIX)]


def test_every_run_is_capped_in_steps_and_seconds(labs, monkeypatch):
    monkeypatch.setattr(config, "MAX_SECONDS_PER_RUN", 0.5)
    lab = labs()
    assert "between 1 and" in lab.start(config.MAX_STEPS_PER_RUN + 1)
    started = time.monotonic()
    lab.start(config.MAX_STEPS_PER_RUN)
    wait_until(lambda: not lab.running, 10, "the run's end")
    assert time.monotonic() - started < 5 and lab.status().status == "time_up"
    assert any("limit of 0.5 seconds" in text for _, text in lab.pop_notices())


def test_the_save_at_the_end_of_a_run_says_no_run_is_going(labs):
    """The keeper saves a lab at once when its run ends, from the run's own thread (on_end),
    while that thread is still alive: the record must say the run is over, or a server that
    restarts later welcomes the student back with "a run was going" for a finished run."""
    lab = labs()
    saves = []  # (lab.running, the record's "running") at each on_change, as the saver sees it
    lab.on_change = lambda changed: saves.append((changed.running, changed.to_record().settings["running"]))
    assert lab.start(20) is None
    wait_until(lambda: lab.status().status == "finished" and not lab.running, what="the run's end")
    thread_alive, saved_running = saves[-1]
    assert thread_alive  # the end is saved from inside the run's thread...
    assert saved_running is False  # ...and yet says the run is over
    assert lab.to_record().settings["running"] is False


# --- isolation and memory -----------------------------------------------------------------
def test_two_students_training_at_once_share_nothing_but_the_data(labs):
    a, b = labs(), labs()
    assert a.start(200) is None and b.start(50) is None
    wait_until(lambda: not a.running and not b.running, what="both runs done")
    assert a.trainer.step == 200 and b.trainer.step == 50
    sa, sb = a.snapshot(), b.snapshot()
    assert sa.history.steps[-1] == 200 and sb.history.steps[-1] == 50  # each its own history
    for name in sa.params:  # each its own weights, not views of one array
        assert not np.shares_memory(a.model.params[name], b.model.params[name])
        assert not np.array_equal(sa.params[name], sb.params[name])
    assert a.data is b.data  # the one thing shared: MNIST, read-only
    a.reset()
    assert b.trainer.step == 50  # one student's reset leaves the other alone


def test_per_session_memory_is_bounded(labs):
    data = get_data()
    assert data.nbytes < 250 * 2**20 and not data.x_train.flags.writeable
    lab = labs()
    # the history keeps at most max_history points (then averages neighbours): bounded
    history = lab.trainer.history
    for step in range(1, 3 * history.max_points):
        history.add_loss(step, 1.0)
    assert len(history.steps) <= history.max_points
    # weights kept per session: the model, one checkpoint, the starting copy, the optimizer
    weights = sum(v.nbytes for v in lab.model.params.values())
    kept = weights * 2 + sum(v.nbytes for v in lab.initial_params.values())
    assert kept <= 3 * weights
    # the default dense model, everything together, is a few MB
    big = LabSession()
    try:
        assert sum(v.nbytes for v in big.model.params.values()) < 2 * 2**20
    finally:
        big.close()


# --- divergence ---------------------------------------------------------------------------
def test_a_too_high_learning_rate_stops_and_restores_finite_weights(labs):
    lab = labs(ModelChoice(kind="dense", hidden=(16,), optimizer="sgd", schedule="constant"))
    lab.start(100, lr=0.01)
    wait_until(lambda: not lab.running, what="a good run")
    good = {k: v.copy() for k, v in lab.model.params.items()}
    lab.pop_notices()
    lab.start(2000, lr=1e6)  # far too high: the loss explodes within a few steps
    wait_until(lambda: not lab.running, what="the diverging run")
    status = lab.status()
    assert status.status == "diverged" and status.step == 100  # stopped on its own, rolled back
    kind, text = lab.pop_notices()[0]
    assert kind == "error" and "diverged" in text and "smaller" in text
    for name, value in lab.model.params.items():
        np.testing.assert_array_equal(value, good[name])  # the last finite weights
    history = lab.snapshot(False).history
    assert np.isfinite(history.losses).all() and history.steps[-1] <= 100  # no NaN for a chart
    figure = figures.loss_figure(history.steps, history.losses)
    assert all(np.isfinite(np.asarray(t.y, dtype=float)).all() for t in figure.data if t.y is not None)
    model, _ = model_from_bytes(lab.to_bytes())  # the saved file is finite and loads
    assert all(np.isfinite(v).all() for v in model.params.values())
    assert status_lines(lab.status())[-1].startswith(":red-badge")


def test_a_finite_but_exploding_loss_also_stops_the_run_and_restores_sane_weights(labs):
    # tanh with plain SGD at lr 1000: the loss climbs to thousands and stays finite. The
    # engine's Trainer stops such a run itself (TrainConfig.blowup_patience); the lab turns
    # it into the same "diverged" message and roll-back as a NaN.
    lab = labs(ModelChoice(kind="dense", hidden=(32,), activation="tanh", optimizer="sgd",
                           schedule="constant", batch_size=32))
    lab.start(100, lr=0.01)
    wait_until(lambda: not lab.running, what="a good run")
    good = {k: v.copy() for k, v in lab.model.params.items()}
    lab.pop_notices()
    lab.start(5000, lr=1e3)
    wait_until(lambda: not lab.running, what="the exploding run")
    status = lab.status()
    assert status.status == "diverged" and status.step == 100
    assert lab.run_info.result_steps < 5000  # it stopped long before its end
    kind, text = lab.pop_notices()[0]
    assert kind == "error" and "the loss grew to" in text and "smaller" in text
    for name, value in lab.model.params.items():
        np.testing.assert_array_equal(value, good[name])
    assert max(lab.snapshot(False).history.losses) < 50  # no exploded point left on the curve


# --- the class configuration --------------------------------------------------------------
def test_config_keeps_xsrf_on_caps_uploads_and_hides_developer_menus():
    streamlit_config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server, client = streamlit_config["server"], streamlit_config["client"]
    assert server["enableXsrfProtection"] is True and server["enableCORS"] is True
    assert server["maxUploadSize"] * 2**20 == config.MAX_UPLOAD_BYTES
    assert client["toolbarMode"] == "viewer" and client["showErrorDetails"] == "none"
    assert server["fileWatcherType"] == "none" and server["headless"] is True


def test_pages_are_compiled_without_magic(monkeypatch):
    """``runner.magicEnabled = false``: no page is run through ``ast.parse`` (Streamlit's
    magic), which failed a page in CI when two threads parsed at once (CPython 3.11)."""
    from streamlit.runtime.scriptrunner import magic
    parsed = []
    monkeypatch.setattr(magic, "add_magic", lambda code, path: parsed.append(path) or code)
    clear_sessions()
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    assert not at.exception and at.title[0].value == "MLP Lab"
    assert parsed == []
    clear_sessions()


def test_an_upload_over_the_cap_is_refused(labs):
    lab = labs()
    before = lab.model
    message = lab.load_bytes(b"PK\x03\x04" + bytes(config.MAX_UPLOAD_BYTES), "huge.npz")
    assert "up to 20 MB" in message and "unchanged" in message and lab.model is before


# --- the waiting status on the Train page (AppTest) ---------------------------------------
def test_train_page_shows_the_waiting_status(monkeypatch):
    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    clear_sessions()
    busy = LabSession(SMALL)
    try:
        busy.start(50_000)
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
        at.run()
        at.switch_page("pages/train.py").run()
        lab = at.session_state["lab"]
        at.select_slider(key="train_steps").set_value(100).run()
        next(b for b in at.button if b.label == "Train").click().run()
        assert lab.waiting
        assert any("Waiting for a free trainer" in i.value for i in at.info)
        assert "Waiting for a free trainer" in " ".join(m.value for m in at.sidebar.markdown)
        stop = next(b for b in at.button if b.label == "Stop")
        assert not stop.disabled  # Stop leaves the line
        busy.stop()
        wait_until(lambda: not lab.running, what="the queued run")
        at.run()
        assert lab.trainer.step == 100 and not at.exception
    finally:
        busy.close()
        clear_sessions()
    assert math.isclose(pool.trainer_threads(), 0)


# --- the line for a trainer: a time limit, and the shared ladder takes a slot too -----------
def test_a_run_waiting_too_long_leaves_the_line_with_a_message(labs, monkeypatch):
    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    monkeypatch.setattr(config, "MAX_WAIT_SECONDS", 1.0)
    busy, queued = labs(), labs()
    busy.start(50_000)
    wait_until(lambda: busy.status().running and not busy.waiting, what="the busy run")
    started = time.monotonic()
    queued.start(100)
    wait_until(lambda: not queued.running, 10, "the waiting run giving up")
    assert 1.0 <= time.monotonic() - started < 5
    assert queued.trainer.step == 0 and queued.run_info.status == "gave_up_waiting"
    (kind, text), = queued.pop_notices()
    assert kind == "info" and "No trainer became free within 1 seconds" in text and "Train" in text
    assert pool.waiting_runs() == 0 and pool.trainer_threads() == 1 and busy.running


def test_the_shared_ladder_takes_a_slot_from_the_same_trainer_pool(labs, monkeypatch):
    from mlp_lab.teaching import Experiments

    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    student = labs()
    student.start(50_000)
    wait_until(lambda: student.status().running and not student.waiting, what="a student's run")
    ladder = Experiments(data=student.data)
    try:
        ladder.request(["notebook"], 1000)
        wait_until(lambda: ladder.waiting, what="the ladder waiting in line")
        assert pool.waiting_runs() == 1 and pool.active_runs() == 1
        assert ladder.progress()[1] == 0.0 and ladder.results(1000) == {}  # nothing trained
        student.stop(wait=True)  # the slot is free: the rung trains, then gives it back
        ladder.wait(120)
        assert "notebook" in ladder.results(1000) and not ladder.errors
        assert pool.active_runs() == 0 and pool.waiting_runs() == 0
        # while the rung trains it holds the slot: a student's run waits behind it
        ladder.request(["loss"], 5000)  # a few seconds of one-image steps
        wait_until(lambda: pool.active_runs() == 1 and not ladder.waiting, what="the rung training")
        before = student.trainer.step
        assert student.start(20) is None
        wait_until(lambda: student.waiting, what="the student waiting behind the ladder")
        ladder.wait(120)
        wait_until(lambda: not student.running, what="the student's run after the rung")
        assert student.trainer.step == before + 20
    finally:
        ladder.close()
        ladder.wait(10)


# --- figures shared by the whole server -----------------------------------------------------
def test_figures_are_built_once_per_content_and_the_cache_is_bounded():
    from mlp_lab.session import FigureCache, digest

    cache, built = FigureCache(size=3), []

    def build(name):
        built.append(name)
        return {"figure": name}

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    key = ("heat", digest(a))
    first = cache.get(key, lambda: build("a"))
    assert cache.get(("heat", digest(a.copy())), lambda: build("again")) is first  # same content
    assert built == ["a"] and cache.hits == 1 and cache.misses == 1
    changed = a.copy()
    changed[0, 0] = 0.5
    assert digest(changed) != digest(a)  # one weight moved: another figure
    assert digest(a.reshape(3, 2)) != digest(a) and digest(a.astype(np.float64)) != digest(a)
    for name in "bcd":  # three more: the least recently used ("a") is dropped
        cache.get(("heat", name), lambda: build(name))
    cache.get(key, lambda: build("a rebuilt"))
    assert built == ["a", "b", "c", "d", "a rebuilt"]


def test_two_fresh_sessions_share_their_weight_figures(labs):
    # Every fresh model starts from the same weights (seed 0): the Weights page's figures
    # of a class of fresh models are one set, not thirty.
    from mlp_lab.session import digest

    one, two = labs(ModelChoice.preset("dense")), labs(ModelChoice.preset("dense"))
    keys = [digest(*(lab.snapshot().params[k] for k in sorted(lab.snapshot().params)))
            for lab in (one, two)]
    assert keys[0] == keys[1]
    one.start(5)
    wait_until(lambda: not one.running, what="a short run")
    assert digest(*(one.snapshot().params[k] for k in sorted(one.snapshot().params))) != keys[1]
