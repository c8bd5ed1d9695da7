"""The teacher's class board: the store's class tables (real SQLite files, several store
connections and a second process on one file, a file of the older schema migrated), the
challenge ranking, pushed lessons, and the keepers of two server processes writing one board.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlp_lab import classboard
from mlp_lab.choices import ModelChoice
from mlp_lab.classboard import Challenge, push_from, push_lesson, push_settings, unique_names
from mlp_lab.keeper import LabKeeper
from mlp_lab.lab import LabSession
from mlp_lab.store import (SCHEMA, SCHEMA_VERSION, ChallengeEntry, SQLiteStore, StatusRow, StoreError,
                           new_student_id)

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def row(sid: str, steps: int, active_at: float, **kw) -> StatusRow:
    values = dict(student_id=sid, network="Dense MLP 784-256-128-10 (relu)", kind="dense", optimizer="adam",
                  lr=0.001, steps=steps, last_loss=0.3, val_accuracy=0.9, test_accuracy=None, test_step=None,
                  state="idle", active_at=active_at, curve=((1000, 0.8), (2000, 0.9)))
    values.update(kw)
    return StatusRow(**values)


def entry(cid: str, sid: str, steps: int, accuracy: float, kind: str = "dense", at: float = 0.0) -> ChallengeEntry:
    return ChallengeEntry(cid, sid, steps, accuracy, "net", kind, 0.001, measured_at=at)


# --- the store's class tables ---------------------------------------------------------------------
def test_two_store_connections_share_one_board_newest_first_with_chosen_names(tmp_path):
    clock = Clock(10_000.0)
    one, two = SQLiteStore(tmp_path, clock=clock), SQLiteStore(tmp_path, clock=clock)  # two processes
    a, b, old = new_student_id(), new_student_id(), new_student_id()
    one.write_status([row(a, 2000, 9_990.0, state="training")])
    two.write_status([row(b, 500, 9_995.0, kind="notebook", test_accuracy=0.61, test_step=500),
                      row(old, 100, 1_000.0)])
    one.set_display_name(b, "  Ada   the  Great ")

    board = one.class_board(active_since=5_000.0)
    assert [r.student_id for r in board] == [b, a]  # the one active hours ago is not listed
    assert board[0].display_name == "Ada the Great" and board[1].display_name is None
    assert board[0].kind == "notebook" and board[0].test_accuracy == 0.61 and board[0].test_step == 500
    assert board[1].state == "training" and board[1].curve == ((1000, 0.8), (2000, 0.9))
    assert len(two.class_board(active_since=0)) == 3

    two.write_status([row(a, 2500, 9_999.0)])  # a row is replaced, not added
    assert [(r.student_id, r.steps) for r in one.class_board(5_000.0)] == [(a, 2500), (b, 500)]
    with sqlite3.connect(tmp_path / "lab.sqlite3") as conn:  # the board's query reads an index
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT student_id FROM class_status WHERE active_at >= 1 "
                            "ORDER BY active_at DESC").fetchall()
    assert any("class_status_active_at" in str(step) for step in plan), plan


def test_a_display_name_is_checked_and_a_bad_stored_curve_reads_as_none(tmp_path):
    store = SQLiteStore(tmp_path)
    sid = new_student_id()
    with pytest.raises(StoreError):
        store.set_display_name(sid, "   ")
    with pytest.raises(StoreError):
        store.set_display_name(sid, "x" * 41)
    with pytest.raises(StoreError):
        store.set_display_name(sid, "bell\x07")
    assert store.set_display_name(sid, "[Click](http://evil.example)") == "[Click](http://evil.example)"
    assert store.display_name(sid) == "[Click](http://evil.example)"  # kept as typed; shown escaped
    store.write_status([row(sid, 1, 1.0)])
    with sqlite3.connect(tmp_path / "lab.sqlite3") as conn:
        conn.execute("UPDATE class_status SET curve = 'not json'")
    assert store.class_board(0)[0].curve == ()


def test_pushed_class_state_is_seen_by_another_process(tmp_path):
    store = SQLiteStore(tmp_path)
    store.set_class_state("lesson", push_lesson("adam"))
    store.set_class_state("stop", {"at": 1})
    with pytest.raises(ValueError):
        store.set_class_state("anything", {})
    script = ("import json, sys; from mlp_lab.store import SQLiteStore\n"
              "s = SQLiteStore(sys.argv[1])\n"
              "print(json.dumps({k: v.value for k, v in s.class_state().items()}))\n"
              "s.set_class_state('challenge', {'id': 'c1', 'metric': 'accuracy', 'max_steps': 2000})\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    seen = json.loads(out)
    assert seen["lesson"]["lesson"] == "adam" and seen["stop"] == {"at": 1}
    assert store.class_state()["challenge"].value["id"] == "c1"  # and the other way round
    store.clear_class_state("stop")
    assert set(store.class_state()) == {"lesson", "challenge"}


def test_clearing_the_class_keeps_the_students_saved_work_and_a_stop(tmp_path):
    store = SQLiteStore(tmp_path)
    sid = new_student_id()
    lab = LabSession()
    store.save_lab(sid, lab.to_record())
    store.write_status([row(sid, 0, 5.0)])
    store.record_entry(entry("c1", sid, 100, 0.5))
    store.set_class_state("lesson", push_lesson("adam"))
    store.set_class_state("stop", {"at": 1})
    store.clear_class()
    assert store.class_board(0) == [] and store.challenge_entries("c1") == []
    assert set(store.class_state()) == {"stop"}
    assert store.load_lab(sid) is not None


def test_the_board_keeps_only_its_newest_rows(tmp_path):
    store = SQLiteStore(tmp_path)
    store.max_board_rows = 5
    ids = [new_student_id() for _ in range(8)]
    store.write_status([row(sid, 0, 100.0 + i) for i, sid in enumerate(ids[:6])])
    store.write_status([row(sid, 0, 200.0 + i) for i, sid in enumerate(ids[6:])])
    assert {r.student_id for r in store.class_board(0)} == set(ids[3:])  # the 5 newest


def test_forget_and_cleanup_remove_a_students_class_rows(tmp_path):
    clock = Clock(100 * 86_400.0)
    store = SQLiteStore(tmp_path, clock=clock)
    gone, stays = new_student_id(), new_student_id()
    store.write_status([row(gone, 1, 1.0), row(stays, 1, clock.now)])
    store.record_entry(entry("c", gone, 1, 0.1))
    store.forget(gone)
    assert [r.student_id for r in store.class_board(0)] == [stays]
    assert store.challenge_entries("c") == []
    store.write_status([row(gone, 1, 1.0)])  # a board row of someone away for 100 days
    store.cleanup(older_than_seconds=30 * 86_400)
    assert [r.student_id for r in store.class_board(0)] == [stays]


def test_a_store_file_of_the_first_schema_is_migrated_and_keeps_its_work(tmp_path):
    sid = new_student_id()
    record = LabSession().to_record()
    made = SQLiteStore(tmp_path / "new")
    made.save_lab(sid, record)
    made.keep(sid, "mine", record)
    old_file = tmp_path / "old" / "lab.sqlite3"
    old_file.parent.mkdir()
    with contextlib.closing(sqlite3.connect(old_file)) as old, \
            contextlib.closing(sqlite3.connect(made.path)) as new:
        for statement in SCHEMA[:-1]:  # the tables of version 1 (no store_meta, no class tables)
            old.execute(statement.format(blob="BLOB"))
        for table in ("students", "lab_records", "kept_models"):
            columns = [c[1] for c in old.execute(f"PRAGMA table_info({table})")]
            rows = new.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            old.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)
        old.commit()
        assert "display_name" not in [c[1] for c in old.execute("PRAGMA table_info(students)")]

    store, second = SQLiteStore(old_file.parent), SQLiteStore(old_file.parent)  # two processes open it
    assert store.load_lab(sid).model == record.model  # the work is still there
    assert [k.name for k in second.kept(sid)] == ["mine"]
    store.set_display_name(sid, "Blue Otter")
    store.write_status([row(sid, 0, 1.0)])
    assert second.class_board(0)[0].display_name == "Blue Otter"
    with contextlib.closing(sqlite3.connect(old_file)) as conn:
        assert conn.execute("SELECT value FROM store_meta WHERE name = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
    SQLiteStore(old_file.parent).class_board(0)  # a migrated file is opened again without migrating twice


# --- challenges --------------------------------------------------------------------------------------
def test_best_accuracy_within_a_step_limit_ranks_each_students_best_qualifying_run():
    ch = Challenge("c", "accuracy", max_steps=2000)
    a, b, c, d = (new_student_id() for _ in range(4))
    entries = [entry("c", a, 2000, 0.95), entry("c", a, 1000, 0.97),  # a's best counts once
               entry("c", b, 2500, 0.99),  # over the limit: does not count
               entry("c", b, 2000, 0.96, at=5.0), entry("c", c, 1500, 0.96, at=9.0),  # tie: fewer steps wins
               entry("c", d, 500, 0.40), entry("other", d, 100, 1.0)]  # another challenge: ignored
    ranked = ch.rank(entries)
    assert [(e.student_id, e.steps, e.test_accuracy) for e in ranked] == [
        (a, 1000, 0.97), (c, 1500, 0.96), (b, 2000, 0.96), (d, 500, 0.40)]
    table = classboard.leaderboard_table(ch, entries)
    assert [r["Place"] for r in table] == [1, 2, 3, 4] and table[0]["Test %"] == 97.0


def test_fewest_steps_to_a_target_and_a_model_kind_rule():
    ch = Challenge("c", "steps", max_steps=None, target=0.95)
    a, b, c = (new_student_id() for _ in range(3))
    entries = [entry("c", a, 3000, 0.951), entry("c", a, 1200, 0.96), entry("c", b, 800, 0.949),
               entry("c", b, 900, 0.95), entry("c", c, 900, 0.97)]
    assert [(e.student_id, e.steps) for e in ch.rank(entries)] == [(c, 900), (b, 900), (a, 1200)]
    notebook = Challenge("n", "accuracy", max_steps=None, kind="notebook")
    assert [e.student_id for e in notebook.rank([entry("n", a, 100, 0.9, kind="dense"),
                                                 entry("n", b, 100, 0.2, kind="notebook")])] == [b]
    assert notebook.describe() == "Best test accuracy, with the notebook model"
    assert ch.describe() == "Reach 95% test accuracy with the fewest steps"


def test_a_challenge_read_back_from_the_store_is_checked():
    ch = Challenge.new("steps", 5000, 0.9, "dense", now=3.0)
    assert Challenge.from_dict(json.loads(json.dumps(ch.to_dict()))) == ch
    for bad in (None, {}, {"id": "x", "metric": "most"}, {"id": "x", "metric": "steps"},
                {"id": "x", "metric": "accuracy", "kind": "huge"}, {"id": "x", "metric": "accuracy", "max_steps": 0}):
        assert Challenge.from_dict(bad) is None


# --- names and pushes ---------------------------------------------------------------------------------
def test_default_names_are_friendly_stable_and_repeats_are_told_apart():
    sid = new_student_id()
    name = classboard.default_name(sid)
    assert name == classboard.default_name(sid) and len(name.split()) == 2
    assert len({classboard.default_name(new_student_id()) for _ in range(300)}) > 150  # many different
    a, b, c = new_student_id(), new_student_id(), new_student_id()
    names = unique_names([(a, "Sam"), (b, "Sam"), (c, "x\u202e" + "y" * 80)])
    assert names[a] == "Sam" and names[b] == "Sam (2)"
    assert "\u202e" not in names[c] and len(names[c]) <= 40  # no direction trick, length capped


def test_a_pushed_lesson_or_settings_come_back_checked_like_a_link():
    lesson = push_from(push_lesson("init"))
    assert lesson.lesson == "init" and lesson.title == "lesson 3 · A better start"
    assert classboard.banner_text(lesson) == "Your teacher started lesson 3 · A better start."
    mine = push_from(push_settings(ModelChoice.preset("dense"), 0.005, 5000))
    assert mine.lesson is None and mine.lr == 0.005 and mine.steps == 5000
    for bad in (None, {"params": "x"}, {"params": {"model": "huge"}}, {"params": {"lr": "inf"}}):
        assert push_from(bad) is None


# --- the keepers of two server processes write one board ---------------------------------------------
@pytest.fixture
def two_keepers(tmp_path):
    made = []
    for _ in range(2):  # two server processes, each with its own connection to the file
        made.append(LabKeeper(SQLiteStore(tmp_path / "data"), saver=False, clock=Clock()))
    yield made
    for keeper in made:
        keeper.close_all()


def wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_rows_of_both_processes_a_stop_for_all_and_a_challenge_measured_by_the_server(two_keepers, tmp_path):
    one, two = two_keepers
    a, b = new_student_id(), new_student_id()
    lab_a, lab_b = one.attach(a).lab, two.attach(b).lab
    lab_b.reset(ModelChoice.preset("notebook"))
    assert lab_a.start(200) is None
    wait(lambda: not lab_a.running)
    one.save_due(), two.save_due()
    board = SQLiteStore(tmp_path / "data").class_board(0)
    steps = {r.student_id: (r.steps, r.kind, r.state) for r in board}
    assert steps == {a: (200, "dense", "idle"), b: (0, "notebook", "idle")}
    assert two.save_due() == 0 and SQLiteStore(tmp_path / "data").class_board(0) == board  # unchanged: not rewritten

    # The teacher (through any process) pushes a challenge: the server measures a's run.
    teacher = SQLiteStore(tmp_path / "data")
    challenge = Challenge.new("accuracy", 2000, None, "any", now=time.time())
    teacher.set_class_state("challenge", challenge.to_dict())
    one.clock.now += 10
    one.save_due()
    entries = teacher.challenge_entries(challenge.id)
    assert [(e.student_id, e.steps) for e in entries] == [(a, 200)]
    assert entries[0].test_accuracy == lab_a.test_result.accuracy and lab_a.test_result.step == 200
    assert lab_a.test_result.accuracy > 0.5  # measured on the 10,000 test images, by the server

    # A stop pushed once stops the run in the other process.
    assert lab_b.start(50_000) is None
    wait(lambda: lab_b.trainer.step > 0)
    two.clock.now += 10
    two.save_due()
    assert [r.state for r in teacher.class_board(0) if r.student_id == b] == ["training"]
    time.sleep(0.01)
    teacher.set_class_state("stop", {"by": "teacher"})
    two.clock.now += 10
    two.save_due()
    wait(lambda: not lab_b.running, timeout=10)
    assert lab_b.trainer.step < 50_000
    lab_b.start(10)  # a later run is not stopped again by the same request
    wait(lambda: not lab_b.running)
    assert lab_b.status().status == "finished"
