"""The store of students' work: what survives a reload, a dropped connection or a restart.

``Store`` is the interface the dashboard uses; ``SQLiteStore`` keeps it in one SQLite file
(``lab.sqlite3`` in ``config.data_dir()``) that every thread and every server process on the
machine shares. Per student id it holds the current lab record (``LabRecord``: the model as
the ``.npz`` bytes of ``mlp_core.persistence``, never a pickle; its settings; the trainer's
state with the loss/validation history; the test accuracy) and the models the student kept
under a name (``KeptModel``).

Written so that a networked database can take SQLite's place without touching the pages:
the SQL is standard (``INSERT ... ON CONFLICT (...) DO UPDATE``, which PostgreSQL has too;
no SQLite-only functions), the types that differ between databases are named in one place
(``Dialect``: BLOB vs BYTEA, how a write transaction begins, the parameter marker), every
value is a bound parameter, time stamps are seconds since 1970 (a number), and no state
lives only in one process: caps are checked inside the write's own transaction. A
PostgreSQL store is a class with the same methods, a connection pool instead of
``_connect`` and ``POSTGRESQL`` as its dialect.

Every failure is a ``StoreError`` whose text is a message for the user: the dashboard
shows it and keeps working from memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from mlp_core.persistence import model_from_bytes
from mlp_core.trainer import TrainerState

from . import config
from .choices import ModelChoice

try:  # to let one process at a time move a damaged file aside (POSIX; elsewhere one thread)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger("mlp_lab")

FILE_NAME = "lab.sqlite3"
STUDENT_ID_BYTES = 24  # 192 random bits, 32 URL-safe characters
_STUDENT_ID = re.compile(r"[A-Za-z0-9_-]{32}")
MAX_NAME_CHARS = 80  # of a kept model's name
MAX_DISPLAY_NAME_CHARS = 40  # of the name a student shows the class
CLASS_STATE_NAMES = ("lesson", "challenge", "stop")  # what the teacher can push
# Wrong teacher codes of every process (mlp_lab.teacher), kept beside what was pushed; not
# one of CLASS_STATE_NAMES, so class_state() never hands it out.
_WRONG_CODES = "wrong_codes"
MAX_BOARD_ROWS = 2_000  # board rows kept (the newest): a flood of new visitors cannot grow it

# SQLite's primary result codes (the low byte of ``sqlite_errorcode``) this module tells apart.
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26


# --- errors: each one's text is for the user ---------------------------------------------------
class StoreError(Exception):
    """Saving or loading a student's work failed; ``str(error)`` is a message for the user."""


class InvalidStudentId(StoreError, ValueError):
    """Not an id ``new_student_id`` makes: refused before it reaches SQL or a path."""


class StoreUnavailable(StoreError):
    """The store cannot be written or read now: a read-only folder, a full disk, a busy or
    unreachable database. The dashboard keeps working from memory."""


class StoreCorrupted(StoreError):
    """The store's file was damaged: it was moved aside (``moved_to``) and a fresh, empty
    store made, which works from the next call on."""

    def __init__(self, message: str, moved_to: Path | None):
        super().__init__(message)
        self.moved_to = moved_to


class StoreQuotaExceeded(StoreError):
    """The record would take a student (or the whole server) over its cap in bytes."""


# --- student ids ----------------------------------------------------------------------------------
def new_student_id() -> str:
    """A fresh random student id: 192 bits from ``secrets``, 32 URL-safe characters."""
    return secrets.token_urlsafe(STUDENT_ID_BYTES)


def is_student_id(value) -> bool:
    return isinstance(value, str) and _STUDENT_ID.fullmatch(value) is not None


def check_student_id(value) -> str:
    """``value`` if it is a student id of ``new_student_id``'s form, else InvalidStudentId."""
    if not is_student_id(value):
        shown = repr(value)[:40]
        raise InvalidStudentId(f"This is not a valid student id ({shown}): expected 32 letters, "
                               "digits, '-' or '_'.")
    return value


def check_name(name) -> str:
    """A kept model's name, stripped: 1 to ``MAX_NAME_CHARS`` printable characters."""
    if not isinstance(name, str) or not name.strip():
        raise StoreError("Give the model a name to keep it under.")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise StoreError(f"A model's name may have up to {MAX_NAME_CHARS} printable characters "
                         f"(this one has {len(name)}).")
    return name


# --- what is stored -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabRecord:
    """One saved lab: enough to rebuild the model and put its trainer back where it was."""

    model: bytes  # the .npz bytes of mlp_core.persistence.model_to_bytes (validated on saving)
    settings: dict  # lab_settings(): the ModelChoice fields, the learning rate, the Train page's steps
    trainer_state: dict  # mlp_core.TrainerState.to_dict(): step, history, learning rate, ...
    test_accuracy: float | None = None  # on the 10,000 test images, a fraction 0-1, if measured
    test_step: int | None = None  # the step it was measured at
    saved_at: float = 0.0  # seconds since 1970 (UTC); set by the store when saving

    def load_model(self):
        """``(model, meta)`` from the bytes, through the validating loader (never pickle)."""
        return model_from_bytes(self.model)

    @property
    def steps(self) -> int:
        return int(self.trainer_state.get("step", 0))


@dataclass(frozen=True)
class KeptModel:
    """One model a student kept under a name, as the list shows it."""

    name: str
    description: str  # e.g. "Dense MLP 784-256-128-10 (relu)"
    steps: int
    test_accuracy: float | None  # a fraction 0-1
    saved_at: float  # seconds since 1970 (UTC)
    size: int  # bytes it takes in the store


@dataclass(frozen=True)
class Usage:
    """How full the store is (bytes are the records' sizes, not the file's)."""

    students: int  # ids with anything saved (one id: 0 or 1)
    lab_records: int
    kept_models: int
    bytes: int  # the records of these students together
    max_student_bytes: int
    max_total_bytes: int
    file_bytes: int = 0  # the database file(s) on disk, all students (0 when not a file)


@dataclass(frozen=True)
class StatusRow:
    """One student's line on the teacher's class board (``class_status``)."""

    student_id: str
    network: str  # e.g. "Dense MLP 784-256-128-10 (relu)"
    kind: str  # "notebook" or "dense"
    optimizer: str  # "adam", "sgd", ...
    lr: float
    steps: int
    last_loss: float | None
    val_accuracy: float | None  # the last validation check, a fraction 0-1
    test_accuracy: float | None  # on the 10,000 test images, if measured
    test_step: int | None
    state: str  # "training", "waiting" (for a free trainer), "idle", "diverged"
    active_at: float  # seconds since 1970: the last change (or visit)
    curve: tuple[tuple[int, float], ...] = ()  # (step, validation accuracy), thinned
    display_name: str | None = None  # what the student chose (board queries fill it in)


@dataclass(frozen=True)
class ClassState:
    """What the teacher pushed (``class_state``): a JSON value and when."""

    name: str  # one of CLASS_STATE_NAMES
    value: dict
    set_at: float  # seconds since 1970


@dataclass(frozen=True)
class ChallengeEntry:
    """One run of a challenge, measured by the server on the 10,000 test images."""

    challenge_id: str
    student_id: str
    steps: int
    test_accuracy: float  # a fraction 0-1
    network: str
    kind: str
    lr: float
    measured_at: float = 0.0  # set by the store
    display_name: str | None = None  # filled in by challenge_entries


def check_display_name(name) -> str:
    """A name to show the class: 1 to MAX_DISPLAY_NAME_CHARS printable characters."""
    if not isinstance(name, str) or not name.strip():
        raise StoreError("Type a name to show the class.")
    name = " ".join(name.split())
    if len(name) > MAX_DISPLAY_NAME_CHARS or not name.isprintable():
        raise StoreError(f"A name may have up to {MAX_DISPLAY_NAME_CHARS} printable characters "
                         f"(this one has {len(name)}).")
    return name


def _curve_text(curve) -> str:
    return json.dumps([[int(s), round(float(a), 4)] for s, a in curve], separators=(",", ":"))


def _curve_from(text) -> tuple[tuple[int, float], ...]:
    """A stored curve back, or () for anything that is not one (never raises)."""
    try:
        points = json.loads(text)
        return tuple((int(s), float(a)) for s, a in points if 0 <= float(a) <= 1)
    except (TypeError, ValueError):
        return ()


def lab_settings(choice: ModelChoice, lr: float, train_steps: int) -> dict:
    """A lab's settings as JSON values: ``choice``'s fields, the learning rate and the
    number of steps the Train page asks for."""
    values = {f.name: getattr(choice, f.name) for f in fields(ModelChoice)}
    values["hidden"] = list(values["hidden"])
    return {"choice": values, "lr": float(lr), "train_steps": int(train_steps)}


def settings_choice(settings: dict) -> tuple[ModelChoice, float, int]:
    """``(choice, lr, train_steps)`` back from ``lab_settings``; ValueError if they do not fit."""
    try:
        values = dict(settings["choice"])
        values["hidden"] = tuple(values["hidden"])
        choice = ModelChoice(**values)
        lr, steps = float(settings["lr"]), int(settings["train_steps"])
        choice.train_config(lr)  # refuses what the engine would refuse
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"these saved settings do not fit this version of MLP Lab ({exc})") from exc
    return choice, lr, steps


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


# --- the interface --------------------------------------------------------------------------------
@runtime_checkable
class Store(Protocol):
    """Where students' work is kept. Every method may raise a ``StoreError`` (a message for
    the user); a student id that ``check_student_id`` refuses raises ``InvalidStudentId``."""

    def save_lab(self, student_id: str, record: LabRecord) -> LabRecord:
        """Replace the student's current lab record (one transaction); returns it with
        ``saved_at`` set. StoreQuotaExceeded if over a cap (the old record stays)."""

    def load_lab(self, student_id: str) -> LabRecord | None:
        """The student's current lab record, or None."""

    def keep(self, student_id: str, name: str, record: LabRecord) -> KeptModel:
        """Keep ``record`` under ``name`` (replacing a kept model of that name)."""

    def kept(self, student_id: str) -> list[KeptModel]:
        """The student's kept models, newest first."""

    def load_kept(self, student_id: str, name: str) -> LabRecord | None:
        """The kept model ``name``, or None."""

    def delete_kept(self, student_id: str, name: str) -> bool:
        """Delete the kept model ``name``; False if there was none."""

    def forget(self, student_id: str) -> None:
        """Delete everything kept for the student."""

    def cleanup(self, older_than_seconds: float | None = None) -> int:
        """Remove every student not saved for ``older_than_seconds`` (default
        ``config.STORE_KEEP_DAYS``); returns how many."""

    def usage(self, student_id: str | None = None) -> Usage:
        """Figures for one student, or for the whole store."""

    # --- the class (the teacher's Class page) --------------------------------------------
    def set_display_name(self, student_id: str, name: str) -> str:
        """Set the name the student shows the class; returns it as kept."""

    def display_name(self, student_id: str) -> str | None:
        """The name the student chose, or None."""

    def write_status(self, rows: list[StatusRow]) -> None:
        """Replace these students' board rows (one transaction)."""

    def class_board(self, active_since: float, limit: int = 500) -> list[StatusRow]:
        """Board rows active since ``active_since`` (seconds since 1970), newest first, with
        the names the students chose."""

    def set_class_state(self, name: str, value: dict) -> ClassState:
        """Push ``value`` under ``name`` (a lesson, a challenge, a stop) for every process."""

    def clear_class_state(self, name: str) -> None:
        """Take back what was pushed under ``name``."""

    def class_state(self) -> dict[str, ClassState]:
        """Everything pushed now, by name."""

    def record_entry(self, entry: ChallengeEntry) -> None:
        """Add (or replace) a challenge run."""

    def challenge_entries(self, challenge_id: str) -> list[ChallengeEntry]:
        """Every run of the challenge, with the students' chosen names."""

    def clear_class(self) -> None:
        """Forget the board's rows, the challenges' runs, the pushed lesson and challenge and
        the count of wrong teacher codes (students' own saved work stays)."""

    def teacher_code_wait(self) -> float:
        """Seconds before any process sharing the store looks at the next teacher code."""

    def count_wrong_teacher_code(self, window: float, free: int, wait: float) -> int:
        """One more wrong teacher code, counted for every process sharing the store; returns
        the count of the current ``window`` seconds. From the ``free``-th on, every process
        waits ``wait`` seconds between tries (``teacher_code_wait``)."""


# --- SQL that differs between databases: here only ------------------------------------------------
@dataclass(frozen=True)
class Dialect:
    name: str
    blob: str  # the type of raw bytes
    begin_write: str  # starts a transaction that will write (and takes the write lock at once)
    placeholder: str  # the bound-parameter marker the driver wants

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` markers, in this dialect (no query holds a literal ``?``)."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


# BEGIN IMMEDIATE takes SQLite's write lock at once, so the caps read inside the transaction
# cannot change before its write; on PostgreSQL a serializable transaction gives the same.
SQLITE = Dialect("sqlite", blob="BLOB", begin_write="BEGIN IMMEDIATE", placeholder="?")
POSTGRESQL = Dialect("postgresql", blob="BYTEA", begin_write="BEGIN ISOLATION LEVEL SERIALIZABLE",
                     placeholder="%s")

_RECORD_COLUMNS = """model {blob} NOT NULL,
    settings TEXT NOT NULL,
    trainer_state TEXT NOT NULL,
    test_accuracy DOUBLE PRECISION,
    test_step BIGINT,
    saved_at DOUBLE PRECISION NOT NULL,
    size BIGINT NOT NULL"""

SCHEMA = [
    # One row per student with anything saved: when it was last saved, for cleanup.
    "CREATE TABLE IF NOT EXISTS students (student_id VARCHAR(64) PRIMARY KEY, "
    "saved_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS students_saved_at ON students (saved_at)",
    f"CREATE TABLE IF NOT EXISTS lab_records (student_id VARCHAR(64) PRIMARY KEY, {_RECORD_COLUMNS})",
    f"""CREATE TABLE IF NOT EXISTS kept_models (student_id VARCHAR(64) NOT NULL,
    name VARCHAR({MAX_NAME_CHARS}) NOT NULL, description TEXT NOT NULL, steps BIGINT NOT NULL,
    {_RECORD_COLUMNS}, PRIMARY KEY (student_id, name))""",
    # (student_id, size) lets the caps' sums read an index instead of rows holding models.
    "CREATE INDEX IF NOT EXISTS lab_records_size ON lab_records (student_id, size)",
    "CREATE INDEX IF NOT EXISTS kept_models_size ON kept_models (student_id, size)",
    # Which migrations the file has had (a file made before this table is version 1).
    "CREATE TABLE IF NOT EXISTS store_meta (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)",
]

# Each version's statements, applied in order to a file of an older version, in one write
# transaction (a second process that waits for it then finds the file migrated). Plain
# ALTER TABLE ... ADD COLUMN and CREATE: PostgreSQL runs them as they are.
MIGRATIONS: dict[int, list[str]] = {
    2: [  # the teacher's Class page (mlp_lab.classboard)
        f"ALTER TABLE students ADD COLUMN display_name VARCHAR({MAX_DISPLAY_NAME_CHARS})",
        # One row per student in memory somewhere: what the class board shows. Written by
        # each process's keeper on a change and every few seconds during a run.
        """CREATE TABLE IF NOT EXISTS class_status (student_id VARCHAR(64) PRIMARY KEY,
        network TEXT NOT NULL, kind VARCHAR(32) NOT NULL, optimizer VARCHAR(32) NOT NULL,
        lr DOUBLE PRECISION NOT NULL, steps BIGINT NOT NULL, last_loss DOUBLE PRECISION,
        val_accuracy DOUBLE PRECISION, test_accuracy DOUBLE PRECISION, test_step BIGINT,
        state VARCHAR(16) NOT NULL, active_at DOUBLE PRECISION NOT NULL, curve TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS class_status_active_at ON class_status (active_at)",
        # What the teacher pushed: the lesson, the challenge, a stop of every run.
        "CREATE TABLE IF NOT EXISTS class_state (name VARCHAR(32) PRIMARY KEY, value TEXT NOT NULL, "
        "set_at DOUBLE PRECISION NOT NULL)",
        # A challenge's runs, each measured by the server on the 10,000 test images.
        """CREATE TABLE IF NOT EXISTS challenge_entries (challenge_id VARCHAR(64) NOT NULL,
        student_id VARCHAR(64) NOT NULL, steps BIGINT NOT NULL, test_accuracy DOUBLE PRECISION NOT NULL,
        network TEXT NOT NULL, kind VARCHAR(32) NOT NULL, lr DOUBLE PRECISION NOT NULL,
        measured_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (challenge_id, student_id, steps))""",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)

_UPSERT_STUDENT = ("INSERT INTO students (student_id, saved_at) VALUES (?, ?) "
                   "ON CONFLICT (student_id) DO UPDATE SET saved_at = excluded.saved_at")
_UPSERT_LAB = ("INSERT INTO lab_records (student_id, model, settings, trainer_state, test_accuracy, "
               "test_step, saved_at, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (student_id) DO UPDATE SET model = excluded.model, "
               "settings = excluded.settings, trainer_state = excluded.trainer_state, "
               "test_accuracy = excluded.test_accuracy, test_step = excluded.test_step, "
               "saved_at = excluded.saved_at, size = excluded.size")
_UPSERT_KEPT = ("INSERT INTO kept_models (student_id, name, description, steps, model, settings, "
                "trainer_state, test_accuracy, test_step, saved_at, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (student_id, name) DO UPDATE SET description = excluded.description, "
                "steps = excluded.steps, model = excluded.model, settings = excluded.settings, "
                "trainer_state = excluded.trainer_state, test_accuracy = excluded.test_accuracy, "
                "test_step = excluded.test_step, saved_at = excluded.saved_at, size = excluded.size")
_RECORD_FIELDS = "model, settings, trainer_state, test_accuracy, test_step, saved_at"


@dataclass(frozen=True)
class _Encoded:
    """A record checked and turned into column values."""

    model: bytes
    settings: str
    trainer_state: str
    test_accuracy: float | None
    test_step: int | None
    size: int  # bytes: the model plus both JSON texts
    description: str
    steps: int


def _encode(record: LabRecord) -> _Encoded:
    """Check ``record`` (ValueError for a programming mistake, never a student's) and encode it."""
    if not isinstance(record, LabRecord):
        raise TypeError(f"expected a LabRecord, got {type(record).__name__}")
    model = bytes(record.model)
    try:
        network, _ = model_from_bytes(model)  # only models that load again are stored
    except ValueError as exc:
        raise ValueError(f"the record's model bytes do not load: {exc}") from exc
    if not isinstance(record.settings, dict):
        raise ValueError(f"settings must be a dict, got {type(record.settings).__name__}")
    state = TrainerState.from_dict(record.trainer_state)  # ValueError with what was expected
    accuracy, step = record.test_accuracy, record.test_step
    if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
                                 or not 0 <= accuracy <= 1):
        raise ValueError(f"test_accuracy must be a fraction from 0 to 1 or None, got {accuracy!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ValueError(f"test_step must be a whole number >= 0 or None, got {step!r}")
    settings = json.dumps(record.settings, allow_nan=False, separators=(",", ":"))
    trainer_state = json.dumps(state.to_dict(), allow_nan=False, separators=(",", ":"))
    size = len(model) + len(settings.encode()) + len(trainer_state.encode())
    return _Encoded(model, settings, trainer_state, None if accuracy is None else float(accuracy),
                    step, size, network.describe(), state.step)


def _decode(row) -> LabRecord:
    model, settings, trainer_state, accuracy, step, saved_at = row
    return LabRecord(model=bytes(model), settings=json.loads(settings),
                     trainer_state=json.loads(trainer_state), test_accuracy=accuracy,
                     test_step=step, saved_at=float(saved_at))


# --- SQLite ---------------------------------------------------------------------------------------
class SQLiteStore:
    """``Store`` in one SQLite file, shared by every thread and process on the machine.

    Each call opens its own connection (Streamlit runs every session in its own thread;
    several server processes may share the file) in WAL mode, so readers never wait for a
    writer and a writer waits up to ``busy_seconds`` for another. Every write is one
    transaction: a crash in the middle leaves the last whole record.
    """

    dialect = SQLITE

    def __init__(self, folder: str | os.PathLike | None = None, *,
                 max_student_bytes: int | None = None, max_total_bytes: int | None = None,
                 busy_seconds: float | None = None, clock: Callable[[], float] = time.time):
        self.folder = Path(folder if folder is not None else config.data_dir())
        self.path = self.folder / FILE_NAME
        self.max_student_bytes = int(max_student_bytes or config.STORE_MAX_STUDENT_BYTES)
        self.max_total_bytes = int(max_total_bytes or config.STORE_MAX_TOTAL_BYTES)
        self.busy_seconds = float(busy_seconds or config.STORE_BUSY_SECONDS)
        self.max_board_rows = MAX_BOARD_ROWS
        self.clock = clock  # seconds since 1970; tests pass their own
        self._ready = False  # folder, WAL mode and tables made (once per process, retried on failure)
        self._ready_lock = threading.Lock()
        self._recover_lock = threading.Lock()

    # -- connections, transactions, errors -------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        """A new connection (the caller closes it). isolation_level=None: the transactions are
        this module's own, begun and committed explicitly."""
        conn = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_seconds * 1000)}")
        return conn

    def _prepare(self) -> None:
        with self._ready_lock:
            if self._ready:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(self._connect()) as conn:
                # WAL: readers see the last committed record while a write goes on, and a
                # write killed half-way leaves only uncommitted frames, which are ignored.
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("store %s: journal mode is %s, not WAL", self.path, mode)
                conn.execute(self.dialect.begin_write)
                try:
                    for statement in SCHEMA:
                        conn.execute(statement.format(blob=self.dialect.blob))
                    self._migrate(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            self._ready = True

    def _migrate(self, conn) -> None:
        """Bring a file of an older schema up to ``SCHEMA_VERSION`` (inside _prepare's write
        transaction). A file from a newer MLP Lab is left alone (its extra columns are unused)."""
        q = self.dialect.sql
        row = conn.execute(q("SELECT value FROM store_meta WHERE name = ?"), ("schema_version",)).fetchone()
        version = int(row[0]) if row else 1
        if version > SCHEMA_VERSION:
            log.warning("store %s: schema version %d is newer than this MLP Lab's (%d)", self.path,
                        version, SCHEMA_VERSION)
            return
        for target in sorted(v for v in MIGRATIONS if v > version):
            for statement in MIGRATIONS[target]:
                conn.execute(statement.format(blob=self.dialect.blob))
            log.info("store %s: migrated to schema version %d", self.path, target)
        if version < SCHEMA_VERSION:
            conn.execute(q("INSERT INTO store_meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
                           "DO UPDATE SET value = excluded.value"), ("schema_version", str(SCHEMA_VERSION)))

    def _call(self, work: Callable[[sqlite3.Connection], object], write: bool):
        """``work(conn)`` in one transaction (a write's or a read's), every failure a StoreError.

        A transaction that finds the file busy is tried again until ``busy_seconds`` have
        passed: SQLite's own busy handler is not called on every path (measured: two
        processes saving at once, each opening and closing its connections, got "database
        is locked" at once now and then, while the last connection to close checkpointed
        the WAL). ``work`` only runs SQL, so a rolled-back try can simply be repeated."""
        deadline = time.monotonic() + self.busy_seconds
        pause = 0.005
        while True:
            try:
                return self._transaction(work, write)
            except sqlite3.DatabaseError as exc:
                code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
                if code in (_SQLITE_BUSY, _SQLITE_LOCKED) and time.monotonic() < deadline:
                    time.sleep(pause * (0.5 + secrets.randbelow(1000) / 1000))  # jitter: no lockstep
                    pause = min(pause * 2, 0.2)
                    continue
                if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                    raise self._recover(exc) from None
                raise self._unavailable(exc, code) from None
            except OSError as exc:  # the folder cannot be made
                raise self._unavailable(exc, None) from None

    def _transaction(self, work: Callable[[sqlite3.Connection], object], write: bool):
        self._prepare()
        with contextlib.closing(self._connect()) as conn:
            conn.execute(self.dialect.begin_write if write else "BEGIN")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

    def _unavailable(self, exc: Exception, code: int | None) -> StoreUnavailable:
        log.warning("store %s unavailable: %s (%s)", self.path, exc, type(exc).__name__)
        if code == _SQLITE_FULL:
            why = "the server's disk is full"
        elif code in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM) or isinstance(exc, OSError):
            why = "its data folder cannot be written"
        elif code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            why = "the store is busy"
        else:
            why = "the store reported an error"
        return StoreUnavailable(f"Your work cannot be saved on this server right now: {why}. The lab "
                                "keeps working, but what you do now is not kept when the page reloads; "
                                "download your model to keep it.")

    def _recover(self, exc: Exception) -> StoreCorrupted:
        """Move the damaged file (and its WAL files) aside and make a fresh store. One process
        at a time (a lock file), and only if the file is still damaged when it gets its turn:
        another process may have done it already."""
        try:
            with self._recover_lock, open(self.folder / (FILE_NAME + ".lock"), "a") as lock:
                if fcntl is not None:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                moved = None
                if self._damaged():
                    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.clock()))
                    moved = self.path.with_name(f"{FILE_NAME}.corrupt-{stamp}")
                    for suffix in ("", "-wal", "-shm"):
                        source = Path(str(self.path) + suffix)
                        if source.exists():
                            os.replace(source, Path(str(moved) + suffix))
                    log.error("store %s was damaged (%s); moved aside as %s", self.path, exc, moved)
                self._ready = False
        except OSError as failed:  # a damaged file in a folder that cannot be written
            log.error("store %s is damaged (%s) and cannot be moved aside: %s", self.path, exc, failed)
            return self._unavailable(failed, None)
        try:
            self._prepare()
        except (sqlite3.DatabaseError, OSError) as again:
            return self._unavailable(again, None)
        where = f" as {moved.name}" if moved else ""
        return StoreCorrupted("The saved work on this server could not be read: its file was damaged, "
                              f"so it was moved aside{where} and a fresh, empty store was started. "
                              "Your lab keeps working, and what you save from now on is kept.", moved)

    def _damaged(self) -> bool:
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=self.busy_seconds)) as conn:
                return conn.execute("PRAGMA quick_check").fetchone()[0] != "ok"
        except sqlite3.DatabaseError as exc:
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            return code in (_SQLITE_CORRUPT, _SQLITE_NOTADB)

    # -- caps ----------------------------------------------------------------------------------------
    def _check_caps(self, conn, student_id: str, size: int, replacing_kept: str | None) -> None:
        """Refuse a record of ``size`` bytes that would take the student or the store over its
        cap, counting what the write replaces as gone (inside the write's transaction)."""
        q = self.dialect.sql
        if replacing_kept is None:  # the lab record is replaced
            mine = conn.execute(q("SELECT COALESCE(SUM(size), 0) FROM kept_models WHERE student_id = ?"),
                                (student_id,)).fetchone()[0]
            replaced = conn.execute(q("SELECT COALESCE(SUM(size), 0) FROM lab_records WHERE student_id = ?"),
                                    (student_id,)).fetchone()[0]
        else:
            mine = (conn.execute(q("SELECT COALESCE(SUM(size), 0) FROM lab_records WHERE student_id = ?"),
                                 (student_id,)).fetchone()[0]
                    + conn.execute(q("SELECT COALESCE(SUM(size), 0) FROM kept_models "
                                     "WHERE student_id = ? AND name <> ?"), (student_id, replacing_kept)).fetchone()[0])
            replaced = conn.execute(q("SELECT COALESCE(SUM(size), 0) FROM kept_models "
                                      "WHERE student_id = ? AND name = ?"), (student_id, replacing_kept)).fetchone()[0]
        if mine + size > self.max_student_bytes:
            raise StoreQuotaExceeded(
                f"Not saved: your work would take {_mb(mine + size)}, and each student may keep up to "
                f"{_mb(self.max_student_bytes)}. Delete a kept model you no longer need, then save again.")
        total = (conn.execute("SELECT COALESCE(SUM(size), 0) FROM lab_records").fetchone()[0]
                 + conn.execute("SELECT COALESCE(SUM(size), 0) FROM kept_models").fetchone()[0])
        if total - replaced + size > self.max_total_bytes:
            raise StoreQuotaExceeded(
                f"Not saved: the server's store is full ({_mb(total)} of {_mb(self.max_total_bytes)}). "
                "Tell your teacher; your lab keeps working, and you can download your model.")

    # -- the Store methods ---------------------------------------------------------------------------
    def save_lab(self, student_id: str, record: LabRecord) -> LabRecord:
        check_student_id(student_id)
        enc = _encode(record)
        now = float(self.clock())
        q = self.dialect.sql

        def work(conn):
            self._check_caps(conn, student_id, enc.size, replacing_kept=None)
            conn.execute(q(_UPSERT_LAB), (student_id, enc.model, enc.settings, enc.trainer_state,
                                          enc.test_accuracy, enc.test_step, now, enc.size))
            conn.execute(q(_UPSERT_STUDENT), (student_id, now))

        self._call(work, write=True)
        return LabRecord(record.model, record.settings, record.trainer_state, record.test_accuracy,
                         record.test_step, now)

    def load_lab(self, student_id: str) -> LabRecord | None:
        check_student_id(student_id)
        row = self._call(lambda conn: conn.execute(
            self.dialect.sql(f"SELECT {_RECORD_FIELDS} FROM lab_records WHERE student_id = ?"),
            (student_id,)).fetchone(), write=False)
        return None if row is None else _decode(row)

    def keep(self, student_id: str, name: str, record: LabRecord) -> KeptModel:
        check_student_id(student_id)
        name = check_name(name)
        enc = _encode(record)
        now = float(self.clock())
        q = self.dialect.sql

        def work(conn):
            self._check_caps(conn, student_id, enc.size, replacing_kept=name)
            conn.execute(q(_UPSERT_KEPT), (student_id, name, enc.description, enc.steps, enc.model,
                                           enc.settings, enc.trainer_state, enc.test_accuracy,
                                           enc.test_step, now, enc.size))
            conn.execute(q(_UPSERT_STUDENT), (student_id, now))

        self._call(work, write=True)
        return KeptModel(name, enc.description, enc.steps, enc.test_accuracy, now, enc.size)

    def kept(self, student_id: str) -> list[KeptModel]:
        check_student_id(student_id)
        rows = self._call(lambda conn: conn.execute(self.dialect.sql(
            "SELECT name, description, steps, test_accuracy, saved_at, size FROM kept_models "
            "WHERE student_id = ? ORDER BY saved_at DESC, name"), (student_id,)).fetchall(), write=False)
        return [KeptModel(name, description, int(steps), accuracy, float(saved_at), int(size))
                for name, description, steps, accuracy, saved_at, size in rows]

    def load_kept(self, student_id: str, name: str) -> LabRecord | None:
        check_student_id(student_id)
        name = check_name(name)
        row = self._call(lambda conn: conn.execute(self.dialect.sql(
            f"SELECT {_RECORD_FIELDS} FROM kept_models WHERE student_id = ? AND name = ?"),
            (student_id, name)).fetchone(), write=False)
        return None if row is None else _decode(row)

    def delete_kept(self, student_id: str, name: str) -> bool:
        check_student_id(student_id)
        name = check_name(name)
        return self._call(lambda conn: conn.execute(self.dialect.sql(
            "DELETE FROM kept_models WHERE student_id = ? AND name = ?"), (student_id, name)).rowcount > 0,
            write=True)

    def forget(self, student_id: str) -> None:
        check_student_id(student_id)

        def work(conn):
            for table in ("lab_records", "kept_models", "class_status", "challenge_entries", "students"):
                conn.execute(self.dialect.sql(f"DELETE FROM {table} WHERE student_id = ?"), (student_id,))

        self._call(work, write=True)

    def cleanup(self, older_than_seconds: float | None = None) -> int:
        if older_than_seconds is None:
            older_than_seconds = config.STORE_KEEP_DAYS * 86_400
        if not (isinstance(older_than_seconds, (int, float)) and math.isfinite(older_than_seconds)
                and older_than_seconds >= 0):
            raise ValueError(f"older_than_seconds must be a number >= 0, got {older_than_seconds!r}")
        cutoff = float(self.clock()) - older_than_seconds
        q = self.dialect.sql

        def work(conn):
            old = "SELECT student_id FROM students WHERE saved_at < ?"
            for table in ("lab_records", "kept_models", "challenge_entries"):
                conn.execute(q(f"DELETE FROM {table} WHERE student_id IN ({old})"), (cutoff,))
            # Board rows of students gone that long (with or without saved work).
            conn.execute(q("DELETE FROM class_status WHERE active_at < ?"), (cutoff,))
            return conn.execute(q("DELETE FROM students WHERE saved_at < ?"), (cutoff,)).rowcount

        removed = self._call(work, write=True)
        if removed:
            log.info("store cleanup: removed %d students not saved for %.0f days", removed,
                     older_than_seconds / 86_400)
        return removed

    def usage(self, student_id: str | None = None) -> Usage:
        where, params = "", ()
        if student_id is not None:
            where, params = " WHERE student_id = ?", (check_student_id(student_id),)
        q = self.dialect.sql

        def work(conn):
            students = conn.execute(q(f"SELECT COUNT(*) FROM students{where}"), params).fetchone()[0]
            labs, lab_bytes = conn.execute(q(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM lab_records{where}"),
                                           params).fetchone()
            kept, kept_bytes = conn.execute(q(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM kept_models{where}"),
                                            params).fetchone()
            return students, labs, kept, lab_bytes + kept_bytes

        students, labs, kept, size = self._call(work, write=False)
        on_disk = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return Usage(students, labs, kept, int(size), self.max_student_bytes, self.max_total_bytes, on_disk)

    # -- the class (the teacher's Class page) ------------------------------------------------------
    def set_display_name(self, student_id: str, name: str) -> str:
        check_student_id(student_id)
        name = check_display_name(name)
        now = float(self.clock())
        self._call(lambda conn: conn.execute(self.dialect.sql(
            "INSERT INTO students (student_id, saved_at, display_name) VALUES (?, ?, ?) "
            "ON CONFLICT (student_id) DO UPDATE SET display_name = excluded.display_name"),
            (student_id, now, name)), write=True)
        return name

    def display_name(self, student_id: str) -> str | None:
        check_student_id(student_id)
        row = self._call(lambda conn: conn.execute(self.dialect.sql(
            "SELECT display_name FROM students WHERE student_id = ?"), (student_id,)).fetchone(), write=False)
        return row[0] if row else None

    def write_status(self, rows: list[StatusRow]) -> None:
        rows = list(rows)
        for row in rows:
            check_student_id(row.student_id)
        if not rows:
            return
        q = self.dialect.sql
        statement = q("INSERT INTO class_status (student_id, network, kind, optimizer, lr, steps, last_loss, "
                      "val_accuracy, test_accuracy, test_step, state, active_at, curve) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (student_id) DO UPDATE SET network = excluded.network, "
                      "kind = excluded.kind, optimizer = excluded.optimizer, lr = excluded.lr, "
                      "steps = excluded.steps, last_loss = excluded.last_loss, "
                      "val_accuracy = excluded.val_accuracy, test_accuracy = excluded.test_accuracy, "
                      "test_step = excluded.test_step, state = excluded.state, "
                      "active_at = excluded.active_at, curve = excluded.curve")
        values = [(r.student_id, r.network, r.kind, r.optimizer, float(r.lr), int(r.steps), r.last_loss,
                   r.val_accuracy, r.test_accuracy, r.test_step, r.state, float(r.active_at),
                   _curve_text(r.curve)) for r in rows]

        def work(conn):
            for value in values:
                conn.execute(statement, value)
            if conn.execute("SELECT COUNT(*) FROM class_status").fetchone()[0] > self.max_board_rows:
                conn.execute(q("DELETE FROM class_status WHERE active_at < (SELECT active_at FROM class_status "
                               "ORDER BY active_at DESC LIMIT 1 OFFSET ?)"), (self.max_board_rows - 1,))

        self._call(work, write=True)

    def class_board(self, active_since: float, limit: int = 500) -> list[StatusRow]:
        rows = self._call(lambda conn: conn.execute(self.dialect.sql(
            "SELECT c.student_id, c.network, c.kind, c.optimizer, c.lr, c.steps, c.last_loss, "
            "c.val_accuracy, c.test_accuracy, c.test_step, c.state, c.active_at, c.curve, s.display_name "
            "FROM class_status c LEFT JOIN students s ON s.student_id = c.student_id "
            "WHERE c.active_at >= ? ORDER BY c.active_at DESC LIMIT ?"),
            (float(active_since), int(limit))).fetchall(), write=False)
        return [StatusRow(sid, network, kind, optimizer, float(lr), int(steps), loss, val, test,
                          None if test_step is None else int(test_step), state, float(active_at),
                          _curve_from(curve), name)
                for (sid, network, kind, optimizer, lr, steps, loss, val, test, test_step, state, active_at,
                     curve, name) in rows]

    def set_class_state(self, name: str, value: dict) -> ClassState:
        if name not in CLASS_STATE_NAMES:
            raise ValueError(f"unknown class state {name!r}")
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
        now = float(self.clock())
        self._call(lambda conn: conn.execute(self.dialect.sql(
            "INSERT INTO class_state (name, value, set_at) VALUES (?, ?, ?) ON CONFLICT (name) "
            "DO UPDATE SET value = excluded.value, set_at = excluded.set_at"), (name, text, now)), write=True)
        return ClassState(name, json.loads(text), now)

    def clear_class_state(self, name: str) -> None:
        self._call(lambda conn: conn.execute(self.dialect.sql("DELETE FROM class_state WHERE name = ?"),
                                             (name,)), write=True)

    def class_state(self) -> dict[str, ClassState]:
        rows = self._call(lambda conn: conn.execute("SELECT name, value, set_at FROM class_state").fetchall(),
                          write=False)
        states = {}
        for name, text, set_at in rows:
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if name in CLASS_STATE_NAMES and isinstance(value, dict):
                states[name] = ClassState(name, value, float(set_at))
        return states

    def record_entry(self, entry: ChallengeEntry) -> None:
        check_student_id(entry.student_id)
        if not 0 <= entry.test_accuracy <= 1:
            raise ValueError(f"test_accuracy must be a fraction, got {entry.test_accuracy!r}")
        now = float(self.clock())
        self._call(lambda conn: conn.execute(self.dialect.sql(
            "INSERT INTO challenge_entries (challenge_id, student_id, steps, test_accuracy, network, kind, lr, "
            "measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (challenge_id, student_id, steps) "
            "DO UPDATE SET test_accuracy = excluded.test_accuracy, network = excluded.network, "
            "kind = excluded.kind, lr = excluded.lr, measured_at = excluded.measured_at"),
            (entry.challenge_id, entry.student_id, int(entry.steps), float(entry.test_accuracy), entry.network,
             entry.kind, float(entry.lr), now)), write=True)

    def challenge_entries(self, challenge_id: str) -> list[ChallengeEntry]:
        rows = self._call(lambda conn: conn.execute(self.dialect.sql(
            "SELECT e.challenge_id, e.student_id, e.steps, e.test_accuracy, e.network, e.kind, e.lr, "
            "e.measured_at, s.display_name FROM challenge_entries e "
            "LEFT JOIN students s ON s.student_id = e.student_id WHERE e.challenge_id = ?"),
            (challenge_id,)).fetchall(), write=False)
        return [ChallengeEntry(cid, sid, int(steps), float(acc), network, kind, float(lr), float(at), name)
                for cid, sid, steps, acc, network, kind, lr, at, name in rows]

    def teacher_code_wait(self) -> float:
        row = self._call(lambda conn: conn.execute(self.dialect.sql(
            "SELECT value FROM class_state WHERE name = ?"), (_WRONG_CODES,)).fetchone(), write=False)
        tries = _wrong_codes_from(row)
        return max(0.0, tries["until"] - float(self.clock()))

    def count_wrong_teacher_code(self, window: float, free: int, wait: float) -> int:
        def work(conn):
            now = float(self.clock())
            row = conn.execute(self.dialect.sql("SELECT value FROM class_state WHERE name = ?"),
                               (_WRONG_CODES,)).fetchone()
            tries = _wrong_codes_from(row)
            if now - tries["since"] > window:  # a new window
                tries = {"since": now, "count": 0, "until": tries["until"]}
            tries["count"] += 1
            if tries["count"] >= free:
                tries["until"] = now + wait
            conn.execute(self.dialect.sql(
                "INSERT INTO class_state (name, value, set_at) VALUES (?, ?, ?) ON CONFLICT (name) "
                "DO UPDATE SET value = excluded.value, set_at = excluded.set_at"),
                (_WRONG_CODES, json.dumps(tries), now))
            return tries["count"]

        return self._call(work, write=True)

    def clear_class(self) -> None:
        def work(conn):
            conn.execute("DELETE FROM class_status")
            conn.execute("DELETE FROM challenge_entries")
            conn.execute(self.dialect.sql("DELETE FROM class_state WHERE name IN ('lesson', 'challenge', ?)"),
                         (_WRONG_CODES,))

        self._call(work, write=True)


def _wrong_codes_from(row) -> dict:
    """The stored count of wrong teacher codes (a fresh one if missing or unreadable)."""
    try:
        value = json.loads(row[0])
        return {"since": float(value["since"]), "count": int(value["count"]), "until": float(value["until"])}
    except (TypeError, ValueError, KeyError, IndexError):
        return {"since": float("-inf"), "count": 0, "until": 0.0}
