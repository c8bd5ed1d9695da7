"""The store of students' work (mlp_lab/store.py): round trips, kept models, ids, real
processes writing at once, a write killed half-way, caps, cleanup, and the failures a
server meets (a damaged file, a folder it cannot write, a full disk)."""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlp_core import TrainConfig, Trainer
from mlp_core.persistence import model_to_bytes
from mlp_lab import config
from mlp_lab.choices import ModelChoice
from mlp_lab.store import (FILE_NAME, InvalidStudentId, LabRecord, SQLiteStore, Store, StoreCorrupted,
                           StoreError, StoreQuotaExceeded, StoreUnavailable, check_student_id,
                           is_student_id, lab_settings, new_student_id, settings_choice)

ROOT = Path(__file__).resolve().parents[1]
CHOICE = ModelChoice(kind="dense", hidden=(16,), batch_size=8)


def make_record(seed: int = 0, steps: int = 20) -> LabRecord:
    """A record of a small dense model really trained ``steps`` steps on random images."""
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 256, (64, 784), dtype=np.uint8), rng.integers(0, 10, 64)
    model = CHOICE.build(seed=seed)
    trainer = Trainer(model, x, y, TrainConfig(optimizer="adam", lr=1e-3, batch_size=8, seed=seed))
    trainer.run(steps=steps)
    return LabRecord(model=model_to_bytes(model), settings=lab_settings(CHOICE, 1e-3, 500),
                     trainer_state=trainer.state().to_dict(), test_accuracy=0.25, test_step=steps)


@pytest.fixture
def store(tmp_path):
    return SQLiteStore(tmp_path / "data")


class Clock:
    """A clock the test moves by hand (seconds since 1970)."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- round trips ---------------------------------------------------------------------------------
def test_a_lab_record_round_trips_and_rebuilds_the_same_model(store):
    assert isinstance(store, Store)
    sid, record = new_student_id(), make_record(steps=25)
    assert store.load_lab(sid) is None
    saved = store.save_lab(sid, record)
    assert saved.saved_at > 0
    loaded = store.load_lab(sid)
    assert loaded.model == record.model  # the very bytes
    assert loaded.settings == record.settings and loaded.trainer_state == record.trainer_state
    assert (loaded.test_accuracy, loaded.test_step, loaded.steps) == (0.25, 25, 25)
    assert loaded.saved_at == saved.saved_at
    original, _ = record.load_model()
    rebuilt, meta = loaded.load_model()
    images = np.random.default_rng(1).random((50, 784), dtype=np.float32)
    np.testing.assert_array_equal(rebuilt.predict_proba(images), original.predict_proba(images))
    assert settings_choice(loaded.settings) == (CHOICE, 1e-3, 500)
    # The trainer state puts a trainer back at the saved step with the saved history.
    trainer = Trainer(rebuilt, np.zeros((8, 784), np.uint8), np.zeros(8, int), TrainConfig(batch_size=8))
    trainer.restore_state(loaded.trainer_state)
    assert trainer.step == 25 and trainer.history.losses == record.trainer_state["history"]["losses"]


def test_saving_again_replaces_the_record_and_other_students_are_apart(store):
    a, b = new_student_id(), new_student_id()
    store.save_lab(a, make_record(seed=1, steps=5))
    store.save_lab(b, make_record(seed=2, steps=7))
    store.save_lab(a, make_record(seed=3, steps=9))
    assert store.load_lab(a).steps == 9 and store.load_lab(b).steps == 7
    assert store.load_lab(a).model == make_record(seed=3, steps=9).model
    usage = store.usage()
    assert (usage.students, usage.lab_records, usage.kept_models) == (2, 2, 0)
    assert usage.file_bytes > 0 and store.usage(a).bytes < usage.bytes
    store.forget(a)
    assert store.load_lab(a) is None and store.load_lab(b) is not None


def test_kept_models_keep_list_load_and_delete(store):
    sid, clock = new_student_id(), Clock()
    store.clock = clock
    first, second = make_record(seed=1, steps=10), make_record(seed=2, steps=30)
    info = store.keep(sid, "  ten steps ", first)
    assert info.name == "ten steps" and info.description == "Dense MLP 784-16-10 (relu)"
    assert (info.steps, info.test_accuracy) == (10, 0.25)
    clock.now += 60
    store.keep(sid, "thirty", second)
    assert [k.name for k in store.kept(sid)] == ["thirty", "ten steps"]  # newest first
    assert [k.steps for k in store.kept(sid)] == [30, 10]
    assert store.load_kept(sid, "ten steps").model == first.model
    assert store.load_kept(sid, "missing") is None
    assert store.kept(new_student_id()) == []  # another student sees none of them
    clock.now += 60
    store.keep(sid, "ten steps", second)  # the same name replaces
    assert len(store.kept(sid)) == 2 and store.load_kept(sid, "ten steps").steps == 30
    assert store.delete_kept(sid, "thirty") is True
    assert store.delete_kept(sid, "thirty") is False
    assert [k.name for k in store.kept(sid)] == ["ten steps"]
    assert store.load_lab(sid) is None  # keeping a model is not saving the lab
    for bad in ("", "   ", "x" * 81, "tab\there"):
        with pytest.raises(StoreError, match="name"):
            store.keep(sid, bad, first)


def test_a_record_that_would_not_load_again_is_refused(store):
    good = make_record()
    with pytest.raises(ValueError, match="do not load"):
        store.save_lab(new_student_id(), LabRecord(b"not a model", good.settings, good.trainer_state))
    with pytest.raises(ValueError, match="step must be"):
        store.save_lab(new_student_id(), LabRecord(good.model, good.settings, {**good.trainer_state, "step": -1}))
    with pytest.raises(ValueError, match="test_accuracy"):
        store.save_lab(new_student_id(), LabRecord(good.model, good.settings, good.trainer_state, 7.0))
    assert store.usage().lab_records == 0


# --- student ids ---------------------------------------------------------------------------------
def test_student_ids_are_random_url_safe_and_anything_else_is_refused(store):
    ids = {new_student_id() for _ in range(1000)}
    assert len(ids) == 1000
    for sid in ids:
        assert len(sid) == 32 and is_student_id(sid) and check_student_id(sid) == sid
        assert set(sid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    good = next(iter(ids))
    record = make_record()
    crafted = ["", "../../etc/passwd", good[:-1], good + "A", good[:-1] + "'", good[:-1] + "\n",
               "x' OR '1'='1' --                ", None, 12345, good.encode()]
    for bad in crafted:
        assert not is_student_id(bad)
        for call in (lambda: store.save_lab(bad, record), lambda: store.load_lab(bad),
                     lambda: store.keep(bad, "m", record), lambda: store.kept(bad),
                     lambda: store.load_kept(bad, "m"), lambda: store.delete_kept(bad, "m"),
                     lambda: store.forget(bad), lambda: store.usage(bad if bad is not None else "")):
            with pytest.raises(InvalidStudentId, match="not a valid student id"):
                call()
    assert store.usage().lab_records == 0


# --- real processes at once, and a write killed half-way -------------------------------------------
WRITER = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    from mlp_core.persistence import model_to_bytes
    from mlp_lab.choices import ModelChoice
    from mlp_lab.store import LabRecord, SQLiteStore

    folder, shared, own, writer, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    store = SQLiteStore(folder, busy_seconds=30)
    model = ModelChoice(kind="dense", hidden=(16,)).build(seed=writer)
    checked = others = 0
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start writing together
    for i in range(n):
        model.params["b1"][0] = writer * 1000 + i  # every record's model differs
        data = model_to_bytes(model)
        settings = {"writer": writer, "i": i, "sha": hashlib.sha256(data).hexdigest()}
        state = {"step": i, "samples_seen": i, "lr": 0.001}
        store.save_lab(shared if i % 2 else own, LabRecord(data, settings, state))
        for sid in (shared, own):
            got = store.load_lab(sid)
            if got is not None:  # a whole record: its model is the one its settings describe
                assert hashlib.sha256(got.model).hexdigest() == got.settings["sha"], got.settings
                assert got.trainer_state["step"] == got.settings["i"]
                checked += 1
                others += got.settings["writer"] != writer  # the other process's write
    print(json.dumps({"checked": checked, "others": others}))
""")


def _python(script: str, *args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def test_two_processes_writing_one_file_at_once_always_leave_whole_records(tmp_path):
    folder, shared = tmp_path / "data", new_student_id()
    own = [new_student_id(), new_student_id()]
    n = 150
    children = [_python(WRITER, folder, shared, own[w], w, n) for w in (0, 1)]
    for child in children:  # both imported and ready, so that their writes overlap
        assert child.stdout.readline() == "ready\n", child.stderr.read()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=300) for child in children]
    reports = []
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
        reports.append(json.loads(out))
        assert reports[-1]["checked"] >= n  # each read a whole record
    # The writes interleaved: each process read records the other had just written.
    assert all(report["others"] > 0 for report in reports), reports
    store = SQLiteStore(folder)
    last = store.load_lab(shared)
    assert last.settings["i"] == n - 1 and last.settings["writer"] in (0, 1)
    assert hashlib.sha256(last.model).hexdigest() == last.settings["sha"]
    for w in (0, 1):
        assert store.load_lab(own[w]).settings == {**store.load_lab(own[w]).settings, "writer": w, "i": n - 2}
    assert store.usage().students == 3


KILLED_MID_WRITE = textwrap.dedent("""
    import os, signal, sys
    from mlp_lab.store import LabRecord, SQLiteStore

    class DiesMidWrite(SQLiteStore):
        # Killed as the write's second statement begins: the record's row is written, the
        # transaction not committed.
        def _connect(self):
            conn = super()._connect()
            def trace(statement):
                if statement.startswith("INSERT INTO students"):
                    print("dying", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
            conn.set_trace_callback(trace)
            return conn

    folder, sid, path = sys.argv[1], sys.argv[2], sys.argv[3]
    good = SQLiteStore(folder).load_lab(sid)
    data = open(path, "rb").read()
    DiesMidWrite(folder).save_lab(sid, LabRecord(data, {"which": "new"}, {**good.trainer_state, "step": 99}))
    print("not killed")
""")


def test_a_process_killed_in_the_middle_of_a_write_leaves_the_last_good_record(tmp_path):
    folder, sid = tmp_path / "data", new_student_id()
    store = SQLiteStore(folder)
    good = make_record(seed=1, steps=5)
    store.save_lab(sid, LabRecord(good.model, {"which": "good"}, good.trainer_state))
    newer = tmp_path / "newer.npz"
    newer.write_bytes(make_record(seed=2).model)
    child = _python(KILLED_MID_WRITE, folder, sid, newer)
    out, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, (out, err)
    assert out.strip() == "dying"
    record = store.load_lab(sid)
    assert record.settings == {"which": "good"} and record.model == good.model and record.steps == 5
    store.save_lab(sid, make_record(seed=3, steps=6))  # the dead writer's lock is gone
    assert store.load_lab(sid).steps == 6


def test_an_exception_between_statements_rolls_the_whole_write_back(store, monkeypatch):
    sid = new_student_id()
    store.save_lab(sid, make_record(seed=1, steps=5))
    original = store._connect

    def failing_connect():
        conn = original()
        # A connection whose second write statement fails (as a full disk would mid-write).
        return _FailOn(conn, "INSERT INTO students")

    monkeypatch.setattr(store, "_connect", failing_connect)
    with pytest.raises(StoreUnavailable, match="cannot be saved"):
        store.save_lab(sid, make_record(seed=2, steps=9))
    monkeypatch.undo()
    assert store.load_lab(sid).steps == 5
    assert store.load_lab(sid).model == make_record(seed=1, steps=5).model


def test_a_write_that_finds_the_file_busy_is_tried_again_and_lands_whole(store, monkeypatch):
    """SQLite sometimes answers "database is locked" at once, without waiting (seen in CI:
    two processes making their first writes to a new file together). The store tries the
    whole transaction again until ``busy_seconds``, and then says so."""
    sid = new_student_id()
    store.save_lab(sid, make_record(seed=1, steps=5))
    original, busy_left = store._connect, [2]

    def sometimes_busy():
        conn = original()
        if busy_left[0]:
            busy_left[0] -= 1
            return _FailOn(conn, "INSERT INTO students", code=5, text="database is locked")
        return conn

    monkeypatch.setattr(store, "_connect", sometimes_busy)
    store.save_lab(sid, make_record(seed=2, steps=9))  # two busy tries, then it lands
    assert busy_left == [0] and store.load_lab(sid).steps == 9
    monkeypatch.setattr(store, "_connect", lambda: _FailOn(original(), "INSERT INTO students",
                                                              code=5, text="database is locked"))
    monkeypatch.setattr(store, "busy_seconds", 0.2)
    with pytest.raises(StoreUnavailable, match="busy"):
        store.save_lab(sid, make_record(seed=3, steps=12))
    monkeypatch.undo()
    assert store.load_lab(sid).steps == 9  # the refused write left the last good record


class _FailOn:
    """A connection wrapper that raises an SQLite error (an I/O error by default) at one statement."""

    def __init__(self, conn, prefix, code=10, text="disk I/O error"):
        self.conn, self.prefix, self.code, self.text = conn, prefix, code, text

    def execute(self, sql, *args):
        if sql.startswith(self.prefix):
            error = sqlite3.OperationalError(self.text)
            error.sqlite_errorcode = self.code
            raise error
        return self.conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


# --- bounds ------------------------------------------------------------------------------------------
def test_caps_refuse_a_record_with_a_message_and_keep_what_was_there(tmp_path):
    record = make_record()
    size = len(record.model) + 2_000  # a record's bytes: the model and its JSON
    store = SQLiteStore(tmp_path, max_student_bytes=int(2.5 * size), max_total_bytes=4 * size)
    a, b = new_student_id(), new_student_id()
    store.save_lab(a, record)
    store.save_lab(a, record)  # replacing counts the old one as gone
    store.keep(a, "one", record)
    with pytest.raises(StoreQuotaExceeded, match="each student may keep up to") as caught:
        store.keep(a, "two", record)
    assert "Delete a kept model" in str(caught.value) and "Traceback" not in str(caught.value)
    assert [k.name for k in store.kept(a)] == ["one"]
    store.keep(a, "one", record)  # replacing a kept model fits
    store.save_lab(b, record)
    store.keep(b, "one", record)
    with pytest.raises(StoreQuotaExceeded, match="store is full"):
        store.save_lab(new_student_id(), record)
    assert store.usage().students == 2


def test_the_caps_come_from_the_settings():
    store = SQLiteStore("/nonexistent-never-touched")
    assert store.max_student_bytes == config.STORE_MAX_STUDENT_BYTES == 20 * 2**20
    assert store.max_total_bytes == config.STORE_MAX_TOTAL_BYTES == 2048 * 2**20
    assert config.STORE_KEEP_DAYS == 30


def test_cleanup_removes_only_students_not_saved_for_that_long(tmp_path):
    clock = Clock()
    store = SQLiteStore(tmp_path, clock=clock)
    old, recent, kept_only = new_student_id(), new_student_id(), new_student_id()
    record = make_record()
    store.save_lab(old, record)
    store.keep(old, "mine", record)
    store.save_lab(recent, record)
    clock.now += 20 * 86_400
    store.keep(kept_only, "mine", record)
    store.keep(recent, "later", record)  # keeping a model counts as saving
    clock.now += 15 * 86_400  # old: 35 days ago; recent and kept_only: 15 days ago
    assert store.cleanup(30 * 86_400) == 1
    assert store.load_lab(old) is None and store.kept(old) == []
    assert store.load_lab(recent) is not None and [k.name for k in store.kept(recent)] == ["later"]
    assert [k.name for k in store.kept(kept_only)] == ["mine"]
    assert store.cleanup() == 0  # the default: 30 days
    clock.now += 16 * 86_400
    assert store.cleanup() == 2 and store.usage().students == 0
    with pytest.raises(ValueError, match="older_than_seconds"):
        store.cleanup(-1)


# --- a server's failures -------------------------------------------------------------------------
def test_a_damaged_file_is_moved_aside_with_a_message_and_a_fresh_store_works(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    garbage = np.random.default_rng(0).bytes(64 * 1024)
    (folder / FILE_NAME).write_bytes(garbage)
    store, sid = SQLiteStore(folder, clock=Clock()), new_student_id()
    with pytest.raises(StoreCorrupted, match="moved aside as lab.sqlite3.corrupt-20231114T221320") as caught:
        store.save_lab(sid, make_record())
    assert "fresh, empty store" in str(caught.value)
    assert caught.value.moved_to.read_bytes() == garbage  # kept for a look, not deleted
    store.save_lab(sid, make_record(steps=3))
    assert store.load_lab(sid).steps == 3
    assert SQLiteStore(folder).load_lab(sid).steps == 3  # another process sees the fresh file


def test_a_file_damaged_while_in_use_is_detected_on_reading(tmp_path):
    store, sid = SQLiteStore(tmp_path), new_student_id()
    store.save_lab(sid, make_record())
    with sqlite3.connect(tmp_path / FILE_NAME) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file
    path = tmp_path / FILE_NAME
    data = bytearray(path.read_bytes())
    page = 4096
    data[page:] = b"\xff" * (len(data) - page)  # every page but the header's
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupted, match="moved aside"):
        store.load_lab(sid)
    assert store.load_lab(sid) is None  # fresh and working
    moved = [p for p in tmp_path.glob(FILE_NAME + ".corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(moved) == 1 and moved[0].read_bytes() == bytes(data)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write into read-only directories, so chmod cannot make one here")
def test_a_read_only_folder_gives_a_clear_error(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StoreUnavailable, match="data folder cannot be written"):
            SQLiteStore(tmp_path).save_lab(new_student_id(), make_record())
    finally:
        tmp_path.chmod(0o700)


def test_a_folder_that_cannot_be_made_gives_a_clear_error(tmp_path):
    # Works as root too: a file where the folder should be.
    (tmp_path / "file").write_text("x")
    store = SQLiteStore(tmp_path / "file" / "data")
    with pytest.raises(StoreUnavailable, match="data folder cannot be written") as caught:
        store.save_lab(new_student_id(), make_record())
    assert "keeps working" in str(caught.value) and "download your model" in str(caught.value)
    with pytest.raises(StoreUnavailable):
        store.load_lab(new_student_id())


class TinyDisk(SQLiteStore):
    """A store whose file may not grow beyond 24 pages of 4 KB (the tables take 19; a record
    of make_record 13), or beyond its size if larger: SQLite's own "database or disk is full"."""

    def _connect(self):
        conn = super()._connect()
        conn.execute("PRAGMA max_page_count = 24")
        return conn


def test_a_full_disk_gives_a_clear_error_and_the_last_record_stays(tmp_path):
    store, sid = TinyDisk(tmp_path), new_student_id()
    with pytest.raises(StoreUnavailable, match="disk is full"):
        store.save_lab(sid, make_record())
    assert store.load_lab(sid) is None
    big = SQLiteStore(tmp_path)  # the same file without the limit
    big.save_lab(sid, make_record(steps=4))
    other = new_student_id()
    with pytest.raises(StoreUnavailable, match="disk is full"):
        TinyDisk(tmp_path).save_lab(other, make_record(seed=5, steps=8))  # needs new pages
    assert big.load_lab(sid).steps == 4 and big.load_lab(other) is None


def test_the_data_folder_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("MLP_LAB_DATA_DIR", str(tmp_path / "here"))
    assert SQLiteStore().folder == tmp_path / "here"
    monkeypatch.delenv("MLP_LAB_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert config.data_dir() == str(tmp_path / "xdg" / "mlp-lab")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert config.data_dir() == os.path.expanduser("~/.local/share/mlp-lab")
    sid = new_student_id()
    monkeypatch.setenv("MLP_LAB_DATA_DIR", str(tmp_path / "new" / "folder"))
    SQLiteStore().save_lab(sid, make_record())  # created on first use
    assert (tmp_path / "new" / "folder" / FILE_NAME).exists()
    with sqlite3.connect(tmp_path / "new" / "folder" / FILE_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- portable SQL --------------------------------------------------------------------------------
def test_the_sql_is_portable_and_the_dialects_differ_only_where_named():
    from mlp_lab import store as module

    statements = [*module.SCHEMA, module._UPSERT_STUDENT, module._UPSERT_LAB, module._UPSERT_KEPT]
    sqlite_only = ("INSERT OR", "REPLACE INTO", "AUTOINCREMENT", "julianday", "datetime(", "strftime(",
                   "ifnull(", "randomblob", "WITHOUT ROWID", "PRAGMA")
    for statement in statements:
        for word in sqlite_only:
            assert word.lower() not in statement.lower(), (word, statement)
    assert "ON CONFLICT (student_id, name) DO UPDATE" in module._UPSERT_KEPT
    schema = " ".join(module.SCHEMA)
    assert "{blob}" in schema and "BLOB" not in schema and "BYTEA" not in schema  # one place
    assert module.POSTGRESQL.sql(module._UPSERT_STUDENT).count("%s") == 2
    assert "?" not in module.POSTGRESQL.sql(module._UPSERT_LAB)
    assert module.SQLITE.sql(module._UPSERT_LAB) == module._UPSERT_LAB


def test_saved_settings_that_do_not_fit_are_refused():
    settings = lab_settings(CHOICE, 0.01, 300)
    assert json.loads(json.dumps(settings)) == settings  # plain JSON
    assert settings_choice(settings) == (CHOICE, 0.01, 300)
    for bad in ({}, {**settings, "lr": -1}, {**settings, "choice": {**settings["choice"], "optimizer": "magic"}},
                {**settings, "choice": {**settings["choice"], "colour": "red"}}):
        with pytest.raises(ValueError, match="do not fit"):
            settings_choice(bad)
