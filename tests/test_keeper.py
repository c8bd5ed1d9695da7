"""The keeper of students' labs (mlp_lab.keeper) with a real SQLite store in a temp folder:
what is saved when, what comes back after a reload or a restart, a dropped connection,
a store that fails. Plus My models on the Model page, in AppTest.

The keepers here run without their saver thread (``saver=False``) and a clock the test
moves, so each test says exactly when saving and letting go happen.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mlp_core.persistence import model_from_bytes
from mlp_lab.choices import ModelChoice
from mlp_lab.keeper import LabKeeper, get_keeper
from mlp_lab.lab import LabSession
from mlp_lab.session import clear_sessions
from mlp_lab.store import SQLiteStore, StoreError, new_student_id

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_idle(lab: LabSession, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while lab.running:
        assert time.monotonic() < deadline, "the run did not end in time"
        time.sleep(0.02)


def wait_steps(lab: LabSession, steps: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while lab.trainer.step < steps:
        assert time.monotonic() < deadline, f"the run did not reach {steps} steps in time"
        time.sleep(0.02)


@pytest.fixture
def store(tmp_path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "store")


@pytest.fixture
def keepers(store):
    """``make()`` -> a new keeper on the same store (a server restart), closed at the end."""
    made = []

    def make(**kwargs) -> LabKeeper:
        keeper = LabKeeper(store, saver=False, clock=kwargs.pop("clock", Clock()), **kwargs)
        made.append(keeper)
        return keeper

    yield make
    for keeper in made:
        keeper.close_all()


def test_a_new_student_gets_a_fresh_lab_and_nothing_is_written(keepers, store):
    keeper = keepers()
    sid = new_student_id()
    attached = keeper.attach(sid)
    assert attached.welcome is None
    assert attached.lab.trainer.step == 0
    assert keeper.save_due() == 0
    assert store.usage(sid).lab_records == 0  # 30 visitors who only look write nothing


def test_a_trained_lab_comes_back_after_a_restart_with_its_history_and_settings(keepers, store):
    keeper = keepers()
    sid = new_student_id()
    lab = keeper.attach(sid).lab
    lab.reset(ModelChoice.preset("dense"), lr=0.003)
    lab.set_train_steps(300)
    assert lab.start(300) is None
    wait_idle(lab)
    measured = lab.evaluate_test()
    assert keeper.save_due() == 1  # the run's end and the test are saved at once
    assert keeper.save_due() == 0  # and not again while nothing changes
    before = lab.snapshot()

    restarted = keepers()  # a new server process on the same store
    attached = restarted.attach(sid)
    back = attached.lab
    assert back is not lab
    assert attached.welcome == "Welcome back: your Dense MLP 784-256-128-10 (relu), 300 steps."
    after = back.snapshot()
    assert after.step == 300 and back.lr == 0.003 and back.train_steps == 300
    assert after.history.steps == before.history.steps
    assert after.history.losses == before.history.losses
    assert after.history.val_accuracy == before.history.val_accuracy
    for name, value in before.params.items():
        np.testing.assert_array_equal(after.params[name], value)
    assert back.test_result.accuracy == measured.accuracy and back.test_result.step == 300
    assert back.test_result.confusion is None  # the Test page asks to measure again for it
    assert back.status().status == "idle" and not back.running


def test_a_run_cut_off_by_the_end_of_the_server_comes_back_stopped_at_its_last_save(keepers):
    clock = Clock()
    keeper = keepers(clock=clock, save_seconds=5)
    sid = new_student_id()
    lab = keeper.attach(sid).lab
    assert lab.start(20_000) is None
    assert keeper.save_due() == 1  # the start of a run is saved at once
    wait_steps(lab, 50)
    assert keeper.save_due() == 0  # then no change but steps: not before save_seconds
    clock.now += 5
    assert keeper.save_due() == 1  # every few seconds during a long run
    saved_step = keeper._labs[sid].saved[1]
    assert saved_step >= 50
    clock.now += 1
    assert keeper.save_due() == 0

    # The server dies now (the old keeper is never asked to save again).
    back_attached = keepers().attach(sid)
    back = back_attached.lab
    assert back.trainer.step == saved_step and not back.running
    assert "A run was going when the server stopped" in back_attached.welcome
    # The weights are those of that step: the file and the trainer state were taken together.
    model, meta = model_from_bytes(back.to_bytes())
    assert meta["training"]["steps"] == saved_step
    lab.stop(wait=True)


def test_every_record_saved_during_a_run_holds_weights_and_step_taken_together(keepers):
    # Plain SGD restored at step N trains on to exactly the weights of one that never stopped,
    # so a record whose weights were a step ahead of its step count would show here.
    keeper = keepers()
    sid = new_student_id()
    lab = keeper.attach(sid).lab
    lab.reset(ModelChoice(kind="dense", hidden=(32,), optimizer="sgd", batch_size=32,
                                 schedule="constant", shift=0), lr=0.05)
    assert lab.start(400) is None
    records = []
    while lab.running or not records:
        records.append(lab.to_record())
        time.sleep(0.01)
    wait_idle(lab)
    final = lab.snapshot()
    assert len(records) >= 3
    for record in records[:: max(1, len(records) // 4)]:
        if record.steps == 400:
            continue
        replay = LabSession(choice=ModelChoice.preset("dense"))
        replay.restore(record)
        assert replay.start(400 - record.steps) is None
        wait_idle(replay)
        for name, value in final.params.items():
            np.testing.assert_allclose(replay.snapshot().params[name], value, rtol=0, atol=1e-6)
        replay.close()


def test_a_run_goes_on_through_a_short_drop_and_stops_when_the_browser_stays_away(keepers, store):
    clock = Clock()
    keeper = keepers(clock=clock, reconnect_seconds=120, idle_seconds=30)
    sid = new_student_id()
    lab = keeper.attach(sid).lab
    assert lab.start(50_000) is None
    wait_steps(lab, 10)
    keeper.detach(sid)  # the websocket dropped
    clock.now += 3
    keeper.save_due()
    step = lab.trainer.step
    again = keeper.attach(sid)  # it reconnected after 3 s
    assert again.lab is lab and lab.running and not lab.closed
    wait_steps(lab, step + 5)  # still training

    trainer = lab.trainer  # (the lab drops it when it leaves memory)
    keeper.detach(sid)  # it went away for good
    clock.now += 119
    keeper.save_due()
    assert lab.running and keeper.in_memory() == 1  # within the reconnect window
    clock.now += 2
    keeper.save_due()
    assert lab.closed and not lab.running and keeper.in_memory() == 0
    saved = store.load_lab(sid)
    assert saved.steps == trainer.step and saved.settings["running"] is False
    assert lab.released  # its arrays dropped at once


def test_an_idle_saved_lab_leaves_memory_sooner_and_comes_back_from_the_store(keepers):
    clock = Clock()
    keeper = keepers(clock=clock, reconnect_seconds=120, idle_seconds=30)
    sid = new_student_id()
    lab = keeper.attach(sid).lab
    assert lab.start(100) is None
    wait_idle(lab)
    keeper.save_due()
    keeper.detach(sid)
    clock.now += 31
    keeper.save_due()
    assert keeper.in_memory() == 0 and lab.closed
    back = keeper.attach(sid)
    assert back.lab is not lab and back.lab.trainer.step == 100 and back.welcome


def test_two_tabs_of_one_browser_share_one_lab_and_students_never_share(keepers):
    clock = Clock()
    keeper = keepers(clock=clock)
    me, other = new_student_id(), new_student_id()
    first, second = keeper.attach(me).lab, keeper.attach(me).lab
    assert first is second
    assert keeper.attach(other).lab is not first
    keeper.detach(me)  # one tab closed: the other still uses the lab
    clock.now += 10_000
    keeper.save_due()
    assert not first.closed and keeper.lab(me) is first


def test_a_store_that_cannot_be_written_gives_one_message_and_the_lab_goes_on(tmp_path, keepers):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    clock = Clock()
    keeper = LabKeeper(SQLiteStore(blocker / "store"), saver=False, clock=clock,
                       reconnect_seconds=120, idle_seconds=30)
    try:
        sid = new_student_id()
        lab = keeper.attach(sid).lab  # loading failed: a fresh lab and a message
        problems = keeper.pop_problems(sid)
        assert len(problems) == 1 and "cannot be saved" in problems[0]
        assert lab.start(50) is None
        wait_idle(lab)
        assert keeper.save_due() == 0
        assert keeper.pop_problems(sid) == []  # the same message is not repeated
        assert lab.trainer.step == 50  # training went on from memory
        keeper.detach(sid)
        clock.now += 60
        keeper.save_due()  # unsaved work: kept in memory the whole reconnect window
        assert keeper.lab(sid) is lab
        assert keeper.attach(sid).lab.trainer.step == 50  # a reload within it finds it
    finally:
        keeper.close_all()


def test_a_saved_lab_that_does_not_fit_starts_fresh_with_a_message(keepers, store):
    keeper = keepers()
    sid = new_student_id()
    lab = keeper.attach(sid).lab
    assert lab.start(20) is None
    wait_idle(lab)
    keeper.save_due()
    record = store.load_lab(sid)
    notebook = dict(record.settings, choice=dict(record.settings["choice"], kind="notebook"))
    store.save_lab(sid, type(record)(record.model, notebook, record.trainer_state))
    restarted = keepers()
    attached = restarted.attach(sid)
    assert attached.lab.trainer.step == 0 and attached.welcome is None
    assert restarted.pop_problems(sid) == [
        "Your saved work could not be read by this version of MLP Lab, so you start with a fresh model."]


def test_kept_models_are_listed_loaded_downloaded_and_deleted(keepers):
    keeper = keepers()
    sid = new_student_id()
    lab = keeper.attach(sid).lab
    assert lab.start(120) is None
    wait_idle(lab)
    keeper.keep(sid, lab, "first try")
    assert lab.start(80) is None
    wait_idle(lab)
    assert [(m.name, m.steps) for m in keeper.kept(sid)] == [("first try", 120)]
    other = new_student_id()
    keeper.attach(other)
    assert keeper.kept(other) == []  # one student's list only

    model, meta = model_from_bytes(keeper.kept_bytes(sid, "first try"))
    assert meta["training"]["steps"] == 120
    keeper.load_kept(sid, lab, "first try")
    assert lab.trainer.step == 120 and len(lab.snapshot(False).history.steps) == 120
    assert keeper.delete_kept(sid, "first try") and keeper.kept(sid) == []
    with pytest.raises(StoreError, match="no kept model"):
        keeper.load_kept(sid, lab, "first try")
    with pytest.raises(StoreError, match="name"):
        keeper.keep(sid, lab, "   ")


# --- My models on the Model page (AppTest) ----------------------------------------------------------
@pytest.fixture
def model_page():
    clear_sessions()
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.run()
    yield at
    clear_sessions()


def button(at, label):
    return next(b for b in at.button if b.label == label)


def test_my_models_keep_list_load_and_delete(model_page):
    at = model_page
    lab = at.session_state["lab"]
    sid = at.session_state["student_id"]
    assert lab.start(150) is None
    wait_idle(lab)
    at.run()
    assert any("No kept models yet" in c.value for c in at.caption)
    # The name field suggests one (its placeholder, used when left empty)
    assert at.text_input(key="keep_name").placeholder == "Dense MLP 784-256-128-10 (relu), 150 steps"
    button(at, "Keep this model").click().run()
    assert [m.name for m in get_keeper().kept(sid)] == ["Dense MLP 784-256-128-10 (relu), 150 steps"]
    get_keeper().delete_kept(sid, "Dense MLP 784-256-128-10 (relu), 150 steps")
    at.text_input(key="keep_name").set_value("my best").run()
    button(at, "Keep this model").click().run()
    assert any("Kept as “my best”" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert list(table["Name"]) == ["my best"] and list(table["Steps"]) == [150]
    assert [m.name for m in get_keeper().kept(sid)] == ["my best"]

    assert lab.start(50) is None
    wait_idle(lab)
    at.run()
    button(at, "Load").click().run()
    assert lab.trainer.step == 150
    assert any("Loaded “my best”" in s.value for s in at.success)

    button(at, "Delete…").click().run()
    assert get_keeper().kept(sid) != []  # asked first
    button(at, "Yes, delete").click().run()
    assert get_keeper().kept(sid) == []
    assert any("No kept models yet" in c.value for c in at.caption)
    assert not at.exception


def test_a_restored_test_accuracy_is_shown_and_the_matrix_is_measured_again(model_page):
    at = model_page
    lab = at.session_state["lab"]
    assert lab.start(60) is None
    wait_idle(lab)
    measured = lab.evaluate_test()
    lab.restore(lab.to_record())  # as after a reload: the accuracy is kept, the matrix is not
    at.switch_page("pages/testing.py").run()
    assert not at.exception
    assert [m.value for m in at.metric if m.label == "Test accuracy"] == [f"{measured.accuracy:.1%}"]
    assert any("Press **Measure test accuracy** to see" in c.value for c in at.caption)
    button(at, "Measure test accuracy").click().run()
    assert lab.test_result.confusion is not None
    assert not any("Press **Measure test accuracy** to see" in c.value for c in at.caption)


def test_the_app_says_once_when_work_cannot_be_saved_and_goes_on(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLP_LAB_DATA_DIR", str(blocker / "store"))
    clear_sessions()  # the next keeper opens the store in that folder
    try:
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
        at.run()
        assert not at.exception
        toasts = [t.value for t in at.toast if "cannot be saved" in t.value]
        assert len(toasts) == 1 and "its data folder cannot be written" in toasts[0]
        lab = at.session_state["lab"]
        assert lab.start(30) is None
        wait_idle(lab)
        at.run()
        at.switch_page("pages/train.py").run()
        assert not at.exception and lab.trainer.step == 30
        assert not [t.value for t in at.toast if "cannot be saved" in t.value]  # said once
    finally:
        clear_sessions()
        monkeypatch.undo()
        get_keeper.reset()


def test_fresh_weights_of_a_new_student_are_not_saved_and_trained_ones_are(keepers):
    # Opening the largest-network link in a loop (a new student each time) wrote 15 MB each
    # and filled the store for everyone; fresh weights are only settings, which a link holds.
    keeper = keepers()
    sid = new_student_id()
    lab = keeper.attach(sid).lab
    lab.reset(ModelChoice(kind="dense", hidden=(64,)))
    assert keeper.save_due() == 0 and keeper.store.load_lab(sid) is None
    assert lab.start(3) is None
    wait_steps(lab, 3)
    lab.stop(wait=True)
    keeper.save_due()
    assert keeper.store.load_lab(sid).steps == 3
    # once the store knows the student, a fresh model replaces the saved one as usual
    lab.reset(ModelChoice(kind="dense", hidden=(32,)))
    assert keeper.save_due() == 1
    assert keeper.store.load_lab(sid).steps == 0
