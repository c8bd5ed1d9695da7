"""Budgets (issue #16): every model within the Model page's limits and float32, the
server-wide memory budget for labs, and a closed lab's memory given back.

Each refusal is checked with the words the student reads; the current model stays.
"""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mlp_core.persistence import inspect_model_bytes
from mlp_lab.budget import MemoryBudget, ModelRefused, estimate_bytes, give_back_memory, tune_malloc
from mlp_lab.choices import ModelChoice
from mlp_lab.keeper import LabKeeper, get_keeper
from mlp_lab.lab import ENDED_TEXT, LabEnded, LabSession
from mlp_lab.session import clear_sessions
from mlp_lab.text import shown
from mlp_lab.store import SQLiteStore, StoreError, new_student_id
from loadtest.hostile import zero_model_file as _file

ROOT = Path(__file__).resolve().parents[1]
SMALL = ModelChoice(kind="dense", hidden=(16,))
BIGGEST = ModelChoice(kind="dense", hidden=(1024,) * 4, batch_size=512)
MB = 2**20




@pytest.fixture(scope="module")
def lab():
    lab = LabSession(SMALL)
    yield lab
    lab.close()


# --- every model within the Model page's limits, float32 ------------------------------------
def test_the_issues_huge_float64_file_is_refused_from_its_headers(lab):
    data = _file((3000, 3000), np.float64, compressed=True)  # 11.4 M parameters, ~100 KB
    assert len(data) < 500_000 and inspect_model_bytes(data).n_values > 11_000_000
    model = lab.model
    tracemalloc.start()
    message = lab.load_bytes(data, "big.npz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert message == ("Could not load big.npz: its network has 2 hidden layers of 3,000 neurons; "
                       "MLP Lab trains up to 4 layers of 1,024. Your current model is unchanged.")
    assert peak < 8 * MB  # nothing of the network's size (91 MB) was allocated
    assert lab.model is model


def test_sixty_four_layers_are_refused(lab):
    message = lab.load_bytes(_file((480,) * 64, compressed=True), "deep.npz")
    assert message == ("Could not load deep.npz: its network has 64 hidden layers of 480 neurons; "
                       "MLP Lab trains up to 4 layers of 1,024. Your current model is unchanged.")


def test_a_float64_file_within_the_limits_is_loaded_as_float32_with_a_note(lab):
    assert lab.load_bytes(_file((32, 16), np.float64), "f64.npz") is None
    assert lab.model.dtype == np.float32 and lab.model.describe().startswith("Dense MLP 784-32-16-10")
    assert all(v.dtype == np.float32 for v in lab.model.params.values())
    assert lab.trainer.model.dtype == np.float32
    assert lab.load_note.startswith("Its weights were stored in float64; MLP Lab trains in float32")
    assert lab.load_bytes(_file((16,)), "f32.npz") is None and lab.load_note == ""


def test_a_network_beyond_the_page_is_refused_by_reset():
    lab = LabSession(SMALL)
    with pytest.raises(ModelRefused) as refused:
        lab.reset(ModelChoice(kind="dense", hidden=(2048,)))
    assert str(refused.value) == ("This model cannot be used: its network has 1 hidden layer of "
                                  "2,048 neurons; MLP Lab trains up to 4 layers of 1,024.")
    assert lab.choice == SMALL


# --- the memory budget ----------------------------------------------------------------------
def test_estimates_match_what_was_measured():
    default = ModelChoice.preset("dense")
    assert 8 * MB < estimate_bytes(default) < 12 * MB  # measured 9.1 MB after training
    assert 120 * MB < estimate_bytes(BIGGEST) < 150 * MB  # measured 132 MB after training


@pytest.fixture
def keeper(tmp_path):
    keeper = LabKeeper(SQLiteStore(tmp_path / "store"), saver=False,
                       budget=MemoryBudget(limit_bytes=200 * MB))
    yield keeper
    keeper.close_all()


REFUSED_BIG = ("The server has no room for a network this large right now: it would need about "
               "{need} MB, and the labs of the students working now already use {used} MB of the 200 "
               "MB this server gives them. Your current model is unchanged. Try a smaller network "
               "(fewer or narrower hidden layers, or a smaller batch), or try again later.")


def test_a_model_beyond_the_budget_is_refused_by_reset_upload_and_kept_model(keeper, caplog):
    first, second = keeper.attach(new_student_id()).lab, new_student_id()
    first.reset(BIGGEST)  # 131 MB of 200: fits
    lab = keeper.attach(second).lab
    used = round((estimate_bytes(BIGGEST) + estimate_bytes(lab.choice)) / MB)
    before = lab.model
    with caplog.at_level(logging.WARNING, logger="mlp_lab"):
        with pytest.raises(ModelRefused) as refused:
            lab.reset(BIGGEST)
    need = round(estimate_bytes(BIGGEST) / MB)
    assert str(refused.value) == REFUSED_BIG.format(used=used, need=need)
    assert lab.model is before
    assert [r.message for r in caplog.records if "memory budget" in r.message] == [
        f"memory budget: refused a 784-1024-1024-1024-1024-10 batch 512 model of {need} MB (labs in "
        f"memory: 2, using {used} MB of 200 MB)"]

    upload = first.to_bytes()
    message = lab.load_bytes(upload, "big.npz")
    assert message == "Could not load big.npz. " + REFUSED_BIG.format(used=used, need=need)
    assert lab.model is before

    keeper.keep(second, first, "big one")  # (kept in the second student's list)
    with pytest.raises(StoreError) as refused:
        keeper.load_kept(second, lab, "big one")
    assert str(refused.value) == REFUSED_BIG.format(used=used, need=need)
    assert lab.model is before

    first.reset(SMALL)  # the first student makes room: now it fits
    lab.reset(BIGGEST)
    assert lab.model.describe().startswith("Dense MLP 784-1024-1024-1024-1024-10")


def test_a_closed_lab_frees_its_arrays_and_then_says_reload(keeper):
    sid = new_student_id()
    lab = keeper.attach(sid).lab
    lab.reset(BIGGEST)
    assert lab.start(2) is None  # trained a little: worth saving (fresh weights are not)
    deadline = time.monotonic() + 60
    while lab.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab.trainer.step == 2
    assert keeper.budget.used() >= estimate_bytes(BIGGEST)
    keeper.detach(sid)
    keeper.clock = lambda: 1e9  # long after
    keeper.save_due()
    assert keeper.in_memory() == 0 and lab.released and keeper.budget.used() == 0
    assert lab.initial_params == {} and lab.replay is None and lab._run is None
    with pytest.raises(LabEnded):
        lab.status()
    with pytest.raises(LabEnded):
        lab.reset()
    assert lab.load_bytes(b"x", "a.npz") == ENDED_TEXT
    assert lab.start(10) == "This session has ended. Reload the page to start again."
    assert not lab.running and lab.pop_notices() == []
    lab.close()  # twice: nothing happens
    back = keeper.attach(sid).lab  # the student reloads: the lab comes back from the store
    assert back is not lab and back.model.describe().startswith("Dense MLP 784-1024-1024-1024-1024-10")


def test_giving_memory_back_is_safe_to_call():
    tune_malloc()
    give_back_memory()


# --- in the app: what the student sees --------------------------------------------------------
def _app(query: dict | None = None, limit_mb: float = 60) -> AppTest:
    clear_sessions()
    get_keeper().budget.limit = int(limit_mb * MB)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=90)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    return at


def test_the_app_refuses_a_link_beyond_the_budget_with_a_toast():
    at = _app({"model": "dense", "hidden": "1024-1024-1024-1024", "batch": "512"})
    try:
        assert not at.exception
        lab = at.session_state["lab"]
        assert lab.choice.hidden == (256, 128)
        toasts = [shown(t.value) for t in at.toast]
        assert any(t.startswith("The link's settings were not used: The server has no room for a "
                                "network this large right now") and "Your current model is unchanged" in t
                   for t in toasts), toasts
    finally:
        clear_sessions()


def test_the_model_page_refuses_a_model_beyond_the_budget():
    at = _app()
    try:
        lab = at.session_state["lab"]
        before = lab.model
        at.text_input(key="m_hidden").set_value("1024, 1024, 1024, 1024").run()
        at.button[0].click().run()
        assert not at.exception
        errors = [shown(e.value) for e in at.error]
        assert any(e.startswith("The server has no room for a network this large right now") for e in errors), errors
        assert lab.model is before
    finally:
        clear_sessions()


def test_the_model_page_shows_the_float64_note_and_refuses_a_huge_upload():
    at = _app(limit_mb=10_000)
    try:
        at.file_uploader[0].upload("f64.npz", _file((32,), np.float64)).run()
        assert any("Loaded f64.npz" in shown(s.value) and "converted" in s.value for s in at.success)
        at.file_uploader[0].upload("big.npz", _file((3000, 3000), np.float64, compressed=True)).run()
        assert any(shown(e.value) == "Could not load big.npz: its network has 2 hidden layers of 3,000 "
                   "neurons; MLP Lab trains up to 4 layers of 1,024. Your current model is unchanged."
                   for e in at.error), [e.value for e in at.error]
        assert not at.exception
    finally:
        clear_sessions()


def test_a_page_of_a_lab_that_left_memory_says_reload_not_a_traceback():
    at = _app(limit_mb=10_000)
    try:
        lab = at.session_state["lab"]
        lab.close()
        lab.release()  # as the keeper does when the browser stayed away
        at.run()  # the stale session's next script run still finds that object
        assert not at.exception
        assert not [e.value for e in at.error if "Something went wrong" in e.value]
        assert any(i.value == ENDED_TEXT for i in at.info), [i.value for i in at.info]
    finally:
        clear_sessions()
