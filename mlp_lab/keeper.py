"""Every student's lab, kept: in memory while their browser is here, in the store beyond.

``LabKeeper`` is where the dashboard gets a student's lab from (``attach``), and where it
says a browser session left (``detach``). One keeper per server process (``get_keeper``):

- **In memory**, a lab is shared by every session of the same student id (two tabs, or a
  reload while the old session lingers), and it outlives a dropped connection: a run goes
  on for ``reconnect_seconds`` after the last session detached, so a 3-second Wi-Fi drop
  changes nothing. Then the run stops, the lab is saved and leaves memory.
- **In the store** (``mlp_lab.store``), a saver thread writes each lab that changed: at once
  after a change worth saving (the end of a run, a new or uploaded model, a learning rate,
  a test), and every ``save_seconds`` while a run trains. A lab that is not in memory comes
  back from its last save: after a reload, a reconnect, or a server restart (a run that was
  going then comes back stopped at that save).

Saving happens off the pages' threads; a store that fails (a full disk, a read-only folder)
gives the student one message and the lab keeps working from memory. No state here that a
second server process would need: what is shared lives in the store.

Nothing here imports streamlit (``mlp_lab.session`` is the glue).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from . import config
from .budget import MemoryBudget, ModelRefused, give_back_memory, tune_malloc
from .lab import FRESH_SOURCE, LabSession
from .pool import server_wide
from .classboard import Challenge, same_row, status_row
from .store import (ChallengeEntry, ClassState, KeptModel, SQLiteStore, StatusRow, Store, StoreCorrupted,
                    StoreError, check_name, check_student_id)

log = logging.getLogger("mlp_lab")

RETRY_SECONDS = 30.0  # after a failed save, the next try (the student was told)
STATUS_SECONDS = 3.0  # a training lab's board row is written this often (else on a change)
CLASS_POLL_SECONDS = 2.0  # how often the keeper reads what the teacher pushed (a stop, a challenge)


@dataclass
class SaveStats:
    """What saving cost, for the benchmark and the closing note."""

    saves: int = 0
    failures: int = 0
    seconds: float = 0.0  # wall time of every save together (building the record + writing it)
    max_seconds: float = 0.0
    bytes: int = 0  # of the last record written

    def add(self, seconds: float, size: int) -> None:
        self.saves += 1
        self.seconds += seconds
        self.max_seconds = max(self.max_seconds, seconds)
        self.bytes = size


@dataclass
class _Kept:
    """A lab in memory and what the keeper knows about it."""

    lab: LabSession
    sessions: int = 0  # browser sessions attached now
    detached_at: float | None = None  # time.monotonic() when the last one left
    saved: tuple[int, int] = (0, 0)  # (lab.revision, trainer step) of the last save (or load)
    saved_at: float = 0.0  # time.monotonic() of the last save
    retry_at: float = 0.0  # after a failed save: not before this
    problems: list[str] = field(default_factory=list)  # store messages for the student, once each
    told: set[str] = field(default_factory=set)  # the messages already given (until a save works)
    in_store: bool = False  # the store holds a lab of this student's (loaded, or saved since)

    def tell(self, message: str) -> None:  # (keeper lock held)
        if message not in self.told:
            self.told.add(message)
            self.problems.append(message)

    def worth_saving(self) -> bool:
        """Fresh weights never trained (no run started), of a student the store does not
        know yet, are not saved: they are only settings (which a link holds too). Saving
        them cost 15 MB for the largest network a link allows, so a client opening that link
        in a loop (a new student each time) filled the store for everyone in minutes
        (loadtest/hostile.py)."""
        lab = self.lab
        return self.in_store or lab.running or lab.trainer.step > 0 or lab.source != FRESH_SOURCE

    def unsaved(self) -> bool:
        if self.lab.released or not self.worth_saving():  # nothing (worth keeping) to save
            return False
        return (self.lab.revision, self.lab.trainer.step) != self.saved


@dataclass(frozen=True)
class Attached:
    """What ``attach`` gives a browser session."""

    lab: LabSession
    welcome: str | None  # "Welcome back: ..." when the student's earlier work came back


def welcome_text(lab: LabSession, interrupted: bool = False) -> str:
    status = lab.status()
    steps = f"{status.step:,} step{'s' if status.step != 1 else ''}" if status.step else "not trained yet"
    text = f"Welcome back: your {status.description}, {steps}."
    if interrupted:
        text += " A run was going when the server stopped: this is its last save."
    return text


class LabKeeper:
    """The labs of every student of this server process; see the module's docstring."""

    def __init__(self, store: Store | None, *, make_lab: Callable[[], LabSession] = LabSession,
                 save_seconds: float | None = None, reconnect_seconds: float | None = None,
                 idle_seconds: float | None = None, clock: Callable[[], float] = time.monotonic,
                 saver: bool = True, budget: MemoryBudget | None = None,
                 wall: Callable[[], float] = time.time):
        self.store = store  # None: memory only
        self.wall = wall  # seconds since 1970: the board's "last active", a stop's time
        self.make_lab = make_lab
        self.save_seconds = save_seconds or config.SAVE_SECONDS
        self.reconnect_seconds = reconnect_seconds or config.RECONNECT_SECONDS
        self.idle_seconds = min(idle_seconds or config.IDLE_IN_MEMORY_SECONDS, self.reconnect_seconds)
        self.clock = clock
        self.stats = SaveStats()
        # What the labs in memory may take together; each lab asks it before a new model.
        self.budget = budget or MemoryBudget()
        self._labs: dict[str, _Kept] = {}
        self._opening: dict[str, threading.Lock] = {}  # one open (or close) of a student at a time
        self._lock = threading.Lock()  # guards the two dicts and every _Kept
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._saver: threading.Thread | None = None
        self._saver_wanted = saver  # False: tests call save_due themselves
        # The class board (mlp_lab.classboard): the rows this process wrote last, when, and
        # which students (re)connected since; what the teacher pushed, read every few seconds.
        self._rows: dict[str, StatusRow] = {}
        self._rows_at: dict[str, float] = {}
        self._signatures: dict[str, tuple] = {}  # what the last row was built from
        self._touched: set[str] = set()
        self._class: dict[str, ClassState] = {}
        self._class_read_at: float | None = None
        self._class_lock = threading.Lock()
        self._stop_seen = self.wall()  # a stop pushed before this process started is old news
        self._measured: set[tuple] = set()  # (student, model, step, challenge) measured already
        self.class_problem: str | None = None  # the last store error of the class work (logged once)

    # --- sessions come and go -------------------------------------------------------------
    def attach(self, student_id: str) -> Attached:
        """The student's lab for a browser session that (re)connected: the one in memory, else
        the last save, else a fresh one. Never raises for the store: a problem with it becomes
        a message (``pop_problems``)."""
        check_student_id(student_id)
        self._start_saver()
        with self._student_lock(student_id):
            with self._lock:
                kept = self._labs.get(student_id)
                if kept is not None:
                    kept.sessions += 1
                    kept.detached_at = None
                    self._touched.add(student_id)
                    return Attached(kept.lab, self._welcome(kept.lab))
            kept, restored, interrupted = self._open(student_id)
            with self._lock:
                kept.sessions += 1
                self._labs[student_id] = kept
                self._touched.add(student_id)
            self._wake.set()  # the board shows the student soon
            kept.lab.on_change = lambda lab: self._wake.set()
            kept.lab.admit = self.budget.admit
            return Attached(kept.lab, welcome_text(kept.lab, interrupted) if restored else None)

    @staticmethod
    def _welcome(lab: LabSession) -> str | None:
        """A lab found in memory with work in it (another tab, or a reload just now)."""
        return welcome_text(lab) if lab.revision > 1 or lab.trainer.step else None

    def _open(self, student_id: str) -> tuple[_Kept, bool, bool]:
        """A lab from the store (or fresh): (its _Kept, whether it came from the store,
        whether a run was cut off by the end of the server)."""
        record, problem = None, None
        if self.store is not None:
            try:
                record = self.store.load_lab(student_id)
            except StoreError as exc:
                problem = str(exc)
        lab = self.make_lab()
        kept = _Kept(lab)
        restored = interrupted = False
        if record is not None:
            try:
                lab.restore(record)
                interrupted = bool(record.settings.get("running"))
                if interrupted:
                    log.info("student %s…: back at step %d, its run was cut off", student_id[:6],
                             record.steps)
            except ModelRefused as exc:  # saved before the limits: a network too large
                log.warning("student %s…: the saved lab was refused: %s", student_id[:6], exc)
                problem = f"{exc} You start with a fresh model."
            except (TypeError, ValueError) as exc:  # an older version's record, a damaged model
                log.warning("student %s…: the saved lab could not be restored: %s", student_id[:6], exc)
                problem = ("Your saved work could not be read by this version of MLP Lab, so you "
                           "start with a fresh model.")
            else:
                restored = True
        kept.in_store = record is not None
        # Its own work is never refused for the budget; it counts from now on.
        self.budget.count(lab, lab.choice)
        # What the store holds already (the record), or a fresh lab: nothing to save yet.
        kept.saved, kept.saved_at = (lab.revision, lab.trainer.step), self.clock()
        if problem:
            kept.tell(problem)
        return kept, restored, interrupted

    def detach(self, student_id: str) -> None:
        """A browser session of the student left (its connection dropped, or it ended)."""
        with self._lock:
            kept = self._labs.get(student_id)
            if kept is None or kept.sessions == 0:
                return
            kept.sessions -= 1
            if kept.sessions == 0:
                kept.detached_at = self.clock()
        self._wake.set()

    def lab(self, student_id: str) -> LabSession | None:
        """The student's lab if it is in memory."""
        with self._lock:
            kept = self._labs.get(student_id)
            return kept.lab if kept else None

    def pop_problems(self, student_id: str) -> list[str]:
        """Messages about the store for the student (each given once)."""
        with self._lock:
            kept = self._labs.get(student_id)
            if kept is None:
                return []
            problems, kept.problems = kept.problems, []
            return problems

    def in_memory(self) -> int:
        with self._lock:
            return len(self._labs)

    @contextlib.contextmanager
    def _student_lock(self, student_id: str):
        """One open or close of a student's lab at a time. The lock leaves the dict with the
        lab (_close_if_gone): a waiter that then holds an old lock takes the new one."""
        while True:
            with self._lock:
                lock = self._opening.setdefault(student_id, threading.Lock())
            with lock:
                with self._lock:
                    current = self._opening.get(student_id) is lock
                if current:
                    yield
                    return

    # --- saving -----------------------------------------------------------------------------
    def save(self, student_id: str) -> str | None:
        """Save the student's lab now (in the caller's thread); None, or the store's message."""
        with self._lock:
            kept = self._labs.get(student_id)
        if kept is None or self.store is None:
            return None
        return self._save(student_id, kept)

    def _save(self, student_id: str, kept: _Kept) -> str | None:
        started = time.perf_counter()
        revision = kept.lab.revision  # read first: a change made during the save is saved next
        try:
            record = kept.lab.to_record()
            self.store.save_lab(student_id, record)
        except StoreError as exc:
            self.stats.failures += 1
            with self._lock:
                # A fresh store (the damaged one moved aside) works from now on: try again soon.
                kept.retry_at = 0.0 if isinstance(exc, StoreCorrupted) else self.clock() + RETRY_SECONDS
                kept.tell(str(exc))
            return str(exc)
        self.stats.add(time.perf_counter() - started, len(record.model))
        with self._lock:
            kept.saved, kept.saved_at, kept.retry_at = (revision, record.steps), self.clock(), 0.0
            kept.in_store = True
            kept.told.clear()  # saving works again: a later failure is news
        return None

    def save_due(self) -> int:
        """Save every lab that changed (a running one at most every ``save_seconds``) and let
        go of the labs whose browsers have been gone long enough. Returns the saves made.
        The saver thread calls this; tests call it directly."""
        now = self.clock()
        with self._lock:
            labs = list(self._labs.items())
        saves = 0
        for student_id, kept in labs:
            if self.store is None or not kept.unsaved() or now < kept.retry_at:
                continue
            changed = kept.lab.revision != kept.saved[0]  # beyond steps trained: save at once
            if changed or now - kept.saved_at >= self.save_seconds:
                saves += self._save(student_id, kept) is None
        if self.store is not None:
            self.class_work(labs, now)
        closed = sum(self._close_if_gone(student_id, kept, now) for student_id, kept in labs)
        if closed:
            give_back_memory()  # the freed arrays go back to the system, not only to malloc
        return saves

    def _close_if_gone(self, student_id: str, kept: _Kept, now: float) -> bool:
        """Close, save and let go of the lab if its browser has been gone long enough;
        True if it left memory."""
        with self._lock:
            if kept.sessions or kept.detached_at is None:
                return False
            busy = kept.lab.running or kept.lab.recording or (kept.unsaved() and self.store is not None)
            wait = self.reconnect_seconds if busy or self.store is None else self.idle_seconds
            if now - kept.detached_at < wait:
                return False
        with self._student_lock(student_id):  # an attach now waits until the lab is saved
            with self._lock:
                if kept.sessions or self._labs.get(student_id) is not kept:
                    return False  # the student came back meanwhile
            kept.lab.close()  # stops its run (the browser did not come back in time)
            if self.store is not None and kept.unsaved():
                self._save(student_id, kept)
            if self.store is not None:
                self._write_rows([(student_id, kept)], self.clock(), final=True)  # "not training"
            with self._lock:
                del self._labs[student_id]
                del self._opening[student_id]
                self._rows.pop(student_id, None)
                self._rows_at.pop(student_id, None)
                self._signatures.pop(student_id, None)
            self._let_go(kept)
        log.info("lab of student %s… left memory (labs in memory: %d, budget used: %.0f MB)",
                 student_id[:6], self.in_memory(), self.budget.used() / 2**20)
        return True

    def _let_go(self, kept: _Kept) -> None:
        """The lab left memory: free its arrays now (a Streamlit session kept for a
        reconnect may still refer to the object) and take it off the budget."""
        kept.lab.release()
        self.budget.forget(kept.lab)

    def save_all(self) -> None:
        """Save every lab with unsaved work now (the server is stopping)."""
        with self._lock:
            labs = list(self._labs.items())
        for student_id, kept in labs:
            if self.store is not None and kept.unsaved():
                self._save(student_id, kept)

    def _start_saver(self) -> None:
        with self._lock:
            if self._saver is not None or not self._saver_wanted:
                return
            self._saver = threading.Thread(target=self._save_loop, name="mlp-lab-saver", daemon=True)
        self._saver.start()
        atexit.register(self.stop)

    def _save_loop(self) -> None:
        if self.store is not None:
            try:
                self.store.cleanup()  # ids not seen for config.STORE_KEEP_DAYS
            except StoreError as exc:
                log.warning("store cleanup skipped: %s", exc)
        while not self._stopped.is_set():
            self._wake.wait(timeout=min(1.0, self.save_seconds))
            self._wake.clear()
            try:
                self.save_due()
            except Exception:  # the saver must go on: one bad lab is logged, not fatal
                log.exception("saving the labs failed")

    def stop(self) -> None:
        """Stop the saver thread after a last save of everything unsaved."""
        self._stopped.set()
        self._wake.set()
        try:
            self.save_all()
        except Exception:  # at exit: log, never raise
            log.exception("the last save failed")

    def close_all(self) -> None:
        """Stop the saver, every run and let go of every lab, each saved first (tests; the
        end of the server)."""
        self._stopped.set()
        self._wake.set()
        with self._lock:
            labs = list(self._labs.items())
            self._labs.clear()
        for student_id, kept in labs:
            kept.lab.close()
            if self.store is not None and kept.unsaved():
                self._save(student_id, kept)
            self._let_go(kept)
        if labs:
            give_back_memory()

    # --- the class (the teacher's Class page) --------------------------------------------------
    def class_work(self, labs: list[tuple[str, _Kept]], now: float) -> None:
        """The saver's share of the class: read what the teacher pushed (every
        ``CLASS_POLL_SECONDS``), honour a stop of every run, measure challenge runs, write
        the board rows that changed. A store error is logged once; the labs go on."""
        try:
            states = self.class_states(max_age=CLASS_POLL_SECONDS)
            stop = states.get("stop")
            if stop is not None and stop.set_at > self._stop_seen:
                self._stop_seen = stop.set_at
                self.stop_every_run(labs)
            # The board first: a measurement takes seconds (the notebook model's, on a busy
            # machine, minutes), and the board must not wait for it.
            self._write_rows(labs, now)
            challenge = Challenge.from_dict(states["challenge"].value) if "challenge" in states else None
            if challenge is not None:
                self._measure(challenge, labs)
        except StoreError as exc:
            with self._lock:
                self._signatures.clear()  # every row is built and written again next time
            if str(exc) != self.class_problem:
                log.warning("class board: %s", exc)
            self.class_problem = str(exc)
        else:
            self.class_problem = None

    def class_states(self, max_age: float = CLASS_POLL_SECONDS) -> dict[str, ClassState]:
        """What the teacher pushed (lesson, challenge, stop), read from the store at most
        every ``max_age`` seconds by this process (the students' banners ask often and
        cheaply). StoreError if it cannot be read."""
        if self.store is None:
            return {}
        with self._class_lock:
            now = self.clock()
            if self._class_read_at is None or now - self._class_read_at >= max_age:
                self._class = self.store.class_state()
                self._class_read_at = now
            return dict(self._class)

    def touch(self, student_id: str) -> None:
        """The student did something the board should show soon (a new name)."""
        with self._lock:
            self._touched.add(student_id)
        self._wake.set()

    def forget_class_states(self) -> None:
        """The next ``class_states`` reads the store (the teacher just pushed something)."""
        with self._class_lock:
            self._class_read_at = None

    def stop_every_run(self, labs: list[tuple[str, _Kept]] | None = None) -> int:
        """Stop every run (and Replay recording) of this process's labs; returns how many."""
        if labs is None:
            with self._lock:
                labs = list(self._labs.items())
        stopped = 0
        for _, kept in labs:
            lab = kept.lab
            if lab.released:
                continue
            if lab.running:
                lab.stop()
                stopped += 1
            if lab.recording:
                lab.stop_recording()
                stopped += 1
        log.info("the teacher stopped every run: %d stopped in this process", stopped)
        return stopped

    def _measure(self, challenge: Challenge, labs: list[tuple[str, _Kept]]) -> None:
        """Enter each finished run that can count into the challenge, measured here on the
        10,000 test images (the Test page's measurement, if it was taken at this step).
        Only models trained from fresh weights on this server count: an uploaded file's or
        a kept model's steps cannot be checked."""
        for student_id, kept in labs:
            lab = kept.lab
            if lab.released or lab.closed or lab.running or lab.recording or lab.source != "fresh weights":
                continue
            step = lab.trainer.step
            if step == 0 or not challenge.counts(lab.choice.kind, step):  # untrained: no run to enter
                continue
            key = (student_id, lab.trainer_id, step, challenge.id)
            if key in self._measured:
                continue
            test = lab.test_result
            if test is None or test.step != step:
                test = lab.evaluate_test()
                if test.step != step:  # a new run began meanwhile: next time
                    continue
            self.store.record_entry(ChallengeEntry(challenge.id, student_id, step, test.accuracy,
                                                   lab.model.describe(), lab.choice.kind, float(lab.lr)))
            self._measured.add(key)
            if len(self._measured) > 100_000:  # bounded: an old key costs one more measurement
                self._measured.clear()

    def _write_rows(self, labs: list[tuple[str, _Kept]], now: float, final: bool = False) -> None:
        """Write the board rows that changed (and a training lab's every STATUS_SECONDS)."""
        rows = []
        for student_id, kept in labs:
            if kept.lab.released:
                continue
            lab = kept.lab
            signature = (lab.revision, lab.trainer.step, lab.running, lab.waiting)
            with self._lock:
                touched = student_id in self._touched
                self._touched.discard(student_id)
                last, last_at = self._rows.get(student_id), self._rows_at.get(student_id, -1e18)
                seen, seen_at = self._signatures.get(student_id, (None, -1e18))
                # Nothing the row shows can have changed: not even built. Built again after
                # a while all the same: a pass that ran half-way through a change (the new
                # revision, the old model) saw the old row under the new signature.
                if not (touched or final) and seen == signature and now - seen_at < 3 * STATUS_SECONDS:
                    continue
                self._signatures[student_id] = (signature, now)
            row = status_row(student_id, lab, self.wall())
            training, due = row.state in ("training", "waiting"), now - last_at >= STATUS_SECONDS
            if not (touched or final):
                if same_row(last, row) and not (training and due):
                    continue  # nothing moved
                if training and last is not None and last.state == row.state and not due:
                    continue  # only the steps and the loss moved: every STATUS_SECONDS
            rows.append(row)
        if not rows:
            return
        self.store.write_status(rows)
        with self._lock:
            for row in rows:
                self._rows[row.student_id] = row
                self._rows_at[row.student_id] = now

    # --- My models ----------------------------------------------------------------------------
    def _need_store(self) -> Store:
        if self.store is None:
            raise StoreError("Keeping models is switched off on this server: download your model "
                             "to keep it.")
        return self.store

    def keep(self, student_id: str, lab: LabSession, name: str) -> KeptModel:
        """Keep the lab's current model under ``name`` (StoreError: a message)."""
        return self._need_store().keep(student_id, check_name(name), lab.to_record())

    def kept(self, student_id: str) -> list[KeptModel]:
        return self._need_store().kept(student_id)

    def load_kept(self, student_id: str, lab: LabSession, name: str) -> None:
        """Put the kept model ``name`` in the lab (its steps, history, settings)."""
        record = self._need_store().load_kept(student_id, name)
        if record is None:
            raise StoreError(f"There is no kept model named {name!r} any more.")
        try:
            lab.restore(record, name=f"“{name}”")
        except ModelRefused as exc:  # too large, or no room in the server's memory now
            raise StoreError(str(exc)) from exc
        except (TypeError, ValueError) as exc:
            raise StoreError(f"The kept model {name!r} could not be read by this version of MLP "
                             "Lab.") from exc

    def kept_bytes(self, student_id: str, name: str) -> bytes:
        """The kept model ``name`` as an ``.npz`` file."""
        record = self._need_store().load_kept(student_id, name)
        if record is None:
            raise StoreError(f"There is no kept model named {name!r} any more.")
        return record.model

    def delete_kept(self, student_id: str, name: str) -> bool:
        return self._need_store().delete_kept(student_id, name)


def _server_keeper() -> LabKeeper:
    tune_malloc()  # a network's arrays go back to the system as soon as they are freed
    return LabKeeper(SQLiteStore())


get_keeper = server_wide(_server_keeper)
