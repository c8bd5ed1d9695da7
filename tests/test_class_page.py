"""The teacher's Class page in AppTest: locked without a configured code, the code asked for
in a password field, wrong codes refused and slowed down, the right one shows the class's
rows from the store; and the teacher code gate's own rules (constant-time compare, backoff).
Plus a student's side: the banner of a pushed lesson and Join (the model kept first)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mlp_lab import classroom, teacher
from mlp_lab.keeper import get_keeper
from mlp_lab.session import clear_sessions
from mlp_lab.links import kept_name
from mlp_lab.store import MAX_NAME_CHARS, SQLiteStore, StatusRow, StoreUnavailable, check_name, new_student_id
from mlp_lab.teacher import CodeGate, configured_code
from mlp_lab.teaching import LESSONS_BY_KEY
from mlp_lab.text import shown

ROOT = Path(__file__).resolve().parents[1]
CODE = "apple-tree-42"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def fresh(monkeypatch):
    clear_sessions()
    monkeypatch.setattr(classroom, "GATE", CodeGate())  # this test's own backoff
    store = get_keeper().store
    store.clear_class()
    yield store
    store.clear_class()
    clear_sessions()


def class_page(monkeypatch, code: str | None) -> AppTest:
    if code is None:
        monkeypatch.delenv(teacher.CODE_KEY, raising=False)
    else:
        monkeypatch.setenv(teacher.CODE_KEY, code)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/class.py").run()
    return at


def everything_shown(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "error", "warning", "code") for e in at.get(kind)
             if isinstance(getattr(e, "value", None), str)]
    parts += [df.value.to_string() for df in at.dataframe]
    return shown("\n".join(parts))


def a_student_row(store, name: str, steps: int = 2000) -> str:
    sid = new_student_id()
    store.write_status([StatusRow(sid, "Dense MLP 784-256-128-10 (relu)", "dense", "adam", 0.002, steps, 0.1234,
                                  0.955, 0.9612, steps, "training", time.time(), ((1000, 0.9), (2000, 0.955)))])
    store.set_display_name(sid, name)
    return sid


def submit(at: AppTest, attempt: str) -> None:
    at.text_input(key="teacher_code_try").input(attempt)
    next(b for b in at.button if b.label == "Open the Class page").click()
    at.run()


def test_without_a_configured_code_the_page_says_how_to_set_one_and_shows_nobody(fresh, monkeypatch):
    a_student_row(fresh, "Quokka Zed")
    at = class_page(monkeypatch, None)
    assert not at.exception
    text = everything_shown(at)
    assert "No teacher code is set on this server" in text and "MLP_LAB_TEACHER_CODE" in text
    assert "Quokka Zed" not in text and not at.dataframe
    assert [t.key for t in at.text_input] == ["class_name_field"]  # no code field: nothing to open


def test_the_code_is_asked_for_wrong_codes_are_refused_and_slowed_the_right_one_shows_rows(fresh, monkeypatch):
    a_student_row(fresh, "Quokka Zed", steps=1500)
    at = class_page(monkeypatch, CODE)
    assert not at.exception
    field = at.text_input(key="teacher_code_try")
    assert field.proto.type == field.proto.PASSWORD  # a password field
    assert "Quokka Zed" not in everything_shown(at) and not at.dataframe  # nothing before the code

    submit(at, "apple-tree-41")
    assert [e.value for e in at.error] == ["That is not the teacher code."]
    assert not at.dataframe and "Quokka Zed" not in everything_shown(at)
    submit(at, "")
    submit(at, "wrong")  # the third wrong code: the next try must wait
    assert "Wait 2 s before the next try" in at.error[0].value
    submit(at, CODE)  # even the right code is not looked at during the wait
    assert "Too many wrong codes: wait" in at.error[0].value and not at.dataframe
    classroom.GATE.clock = lambda: time.monotonic() + 3  # the wait is over
    submit(at, CODE)
    assert not at.exception and not at.error
    board = at.dataframe[0].value
    mine = board[board["Student"] == "Quokka Zed"].iloc[0]
    assert mine["Steps"] == 1500 and mine["Test %"] == 96.12 and mine["State"] == "training"
    assert at.session_state["teacher_code_try"] == ""  # the typed code does not stay in the session
    assert CODE not in str(at.query_params)


def test_a_teacher_pushes_a_lesson_and_a_student_joins_keeping_the_model(fresh, monkeypatch):
    at = class_page(monkeypatch, CODE)
    submit(at, CODE)
    at.selectbox(key="push_pick").select("init").run()
    next(b for b in at.button if b.label == "Push it to every student").click().run()
    assert not at.exception
    assert "Students see now" in everything_shown(at)
    pushed = fresh.class_state()["lesson"].value
    assert pushed["lesson"] == "init"

    clear_sessions()  # now a student (AppTest has one session id: a fresh lab)
    student = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    student.run()
    lab = student.session_state["lab"]
    assert lab.start(100) is None
    while lab.running:
        time.sleep(0.05)
    student.run()
    banner = [m.value for m in student.markdown if "Your teacher started" in m.value]
    assert banner and "lesson 3 · A better start" in shown(banner[0])
    next(b for b in student.button if b.label == "Join").click().run()
    assert not student.exception
    lab = student.session_state["lab"]
    assert lab.trainer.step == 0 and lab.choice == LESSONS_BY_KEY["init"].choice  # the lesson's model
    kept = get_keeper().kept(student.session_state["student_id"])
    assert [k.steps for k in kept] == [100] and "before your teacher's lesson" in kept[0].name
    assert not [m.value for m in student.markdown if "Your teacher started" in m.value]  # answered


# --- the gate's own rules ---------------------------------------------------------------------------
def test_the_gate_compares_slows_each_session_and_the_whole_server():
    clock = Clock()
    gate = CodeGate(clock=clock)
    assert gate.check("s", CODE, CODE).ok
    assert not gate.check("s", CODE + " ", CODE).ok and not gate.check("s", None, CODE).ok
    verdict = gate.check("s", "x" * 10_000, CODE)  # the third: refused unread, then a wait
    assert not verdict.ok and verdict.wait == 2.0
    assert "wait 2 s" in gate.check("s", CODE, CODE).message  # the right code too, until then
    clock.now += 2.1
    assert gate.check("s", CODE, CODE).ok  # and it resets the session's count
    # Reloading makes new sessions: the server-wide count slows them all down.
    for i in range(teacher.SERVER_FREE):
        clock.now += 0.01
        gate.check(f"reload-{i}", "guess", CODE)
    assert "Too many wrong codes" in gate.check("new-session", CODE, CODE).message
    clock.now += teacher.SERVER_WAIT + 0.1
    assert gate.check("new-session", CODE, CODE).ok


def test_wrong_codes_are_counted_for_every_process_sharing_the_store(tmp_path):
    """Two server processes (two gates, each with its own store object on one file): the
    wrong codes typed in both add up, and the wait that follows holds in both."""
    wall = Clock()
    stores = [SQLiteStore(tmp_path / "data", clock=wall) for _ in range(2)]
    gates = [CodeGate(clock=Clock()) for _ in range(2)]  # each process's own monotonic clock
    for i in range(teacher.SERVER_FREE - 1):  # half typed in each process: no wait yet
        wall.now += 0.01
        assert not gates[i % 2].check(f"reload-{i}", "guess", CODE, shared=stores[i % 2]).wait
    assert gates[0].check("new", CODE, CODE, shared=stores[0]).ok
    wall.now += 0.01
    verdict = gates[1].check("one-more", "guess", CODE, shared=stores[1])  # the tenth, in process 2
    assert verdict.wait == teacher.SERVER_WAIT
    # Process 1 counted only 5 itself, yet it makes everyone wait: the right code too.
    assert "Too many wrong codes" in gates[0].check("new", CODE, CODE, shared=stores[0]).message
    wall.now += teacher.SERVER_WAIT + 0.1
    assert gates[0].check("new", CODE, CODE, shared=stores[0]).ok
    # A new window starts the count again.
    wall.now += teacher.SERVER_WINDOW + 1
    assert stores[0].count_wrong_teacher_code(teacher.SERVER_WINDOW, teacher.SERVER_FREE, teacher.SERVER_WAIT) == 1
    stores[1].clear_class()  # the teacher's "Clear the class's records" forgets them
    assert stores[0].teacher_code_wait() == 0


def test_a_store_that_cannot_be_reached_leaves_the_gate_counting_alone(tmp_path):
    class Gone:
        def teacher_code_wait(self, *args):
            raise StoreUnavailable("the disk is full")

        count_wrong_teacher_code = teacher_code_wait

    clock = Clock()
    gate = CodeGate(clock=clock)
    for i in range(teacher.SERVER_FREE):
        clock.now += 0.01
        verdict = gate.check(f"reload-{i}", "guess", CODE, shared=Gone())
    assert verdict.wait == teacher.SERVER_WAIT  # the process's own count still slows them down
    clock.now += teacher.SERVER_WAIT + 0.1
    assert gate.check("new", CODE, CODE, shared=Gone()).ok


def test_the_code_comes_from_the_environment_or_the_secrets_and_a_missing_file_is_no_error():
    def no_file(key):
        raise FileNotFoundError("no secrets.toml")

    assert configured_code({}, no_file) is None
    assert configured_code({}, lambda key: "  from-secrets ") == "from-secrets"
    assert configured_code({teacher.CODE_KEY: "from-env"}, lambda key: "from-secrets") == "from-env"
    assert teacher.code_problem("short") and teacher.code_problem(CODE) is None


def press(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception


def test_stop_every_run_and_clear_the_records_each_ask_first(fresh, monkeypatch):
    other = a_student_row(fresh, "Quokka Zed")
    at = class_page(monkeypatch, CODE)
    submit(at, CODE)
    lab = at.session_state["lab"]  # a run going in this server process
    assert lab.start(50_000) is None
    press(at, "Stop every run…")
    assert lab.running and "stop" not in fresh.class_state()  # only asked
    assert any("Stop every student's training now" in w.value for w in at.warning)
    press(at, "Cancel")
    assert lab.running and not at.warning
    press(at, "Stop every run…")
    press(at, "Yes, do it")
    assert "stop" in fresh.class_state()  # for every process sharing the store
    deadline = time.monotonic() + 10
    while lab.running:
        assert time.monotonic() < deadline, "the run did not stop"
        time.sleep(0.05)
    assert lab.trainer.step < 50_000

    assert any(r.student_id == other for r in fresh.class_board(0))
    press(at, "Clear the class's records…")
    assert any(r.student_id == other for r in fresh.class_board(0))
    press(at, "Yes, do it")
    assert all(r.student_id != other for r in fresh.class_board(0))  # (the teacher's own may come back)


def test_the_code_in_the_secrets_file_opens_the_page(fresh, monkeypatch):
    monkeypatch.delenv(teacher.CODE_KEY, raising=False)
    a_student_row(fresh, "Quokka Zed")
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.secrets[teacher.CODE_KEY] = "from-the-secrets-file"
    at.run()
    at.switch_page("pages/class.py").run()
    assert "No teacher code is set" not in everything_shown(at) and not at.dataframe
    submit(at, "from-the-secrets-file")
    assert not at.exception and "Quokka Zed" in set(at.dataframe[0].value["Student"])


def test_every_control_of_the_class_page_has_help_text(fresh, monkeypatch):
    at = class_page(monkeypatch, CODE)
    for widget in at.text_input:
        assert widget.help, widget.label
    submit(at, CODE)
    press(at, "Stop every run…")  # the confirmation's buttons too
    for kind in ("button", "selectbox", "radio", "text_input", "slider"):
        for widget in getattr(at, kind):
            assert widget.help, f"{kind} {widget.label!r} has no help text"


def test_a_model_kept_before_a_lesson_gets_a_name_the_store_takes():
    # The browser test's student: 2,000 steps of the dense preset made an 82-character name,
    # which the store refused, so Join was refused too.
    name = kept_name("Dense MLP 784-256-128-10 (relu)", 2000, "your teacher's lesson", "10:12")
    assert len(name) <= MAX_NAME_CHARS and check_name(name) == name
    assert name.startswith("Dense MLP 784-256-128")
    assert name.endswith(", 2,000 steps (before your teacher's lesson, 10:12)")
    long = kept_name("Dense MLP " + "-".join(["512"] * 8) + " (relu)", 123_456, "your teacher's lesson", "10:12")
    assert check_name(long) == long and len(long) == MAX_NAME_CHARS and "…" in long
