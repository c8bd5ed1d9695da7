"""The server's trainers: at most ``config.MAX_ACTIVE_RUNS`` pieces of training run at
once in this process, whoever asks (a student's run, a Replay recording, the shared
ladder, the Keras comparison); the others wait in line and start by themselves.

Every piece of training takes its place the same way::

    with POOL.slot(cancel, max_wait=...) as slot:
        if slot.acquired:
            ...train...

and a job the whole server shares (the ladder, the Keras comparison) is a ``SharedJobs``:
one worker thread, a queue of keys, results kept by key.

A server can be watched from outside: every student's training thread is named
``mlp-lab-trainer-*``, and if ``MLP_LAB_STATUS_DIR`` is set, ``trainers.json`` in that
folder always holds the current counts (the browser tests and the load test read it).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import threading
import time

from . import config

log = logging.getLogger("mlp_lab")

TRAINER_THREAD_PREFIX = "mlp-lab-trainer-"


class Slot:
    """One place in the line for a trainer. ``with`` waits for the turn (in the thread that
    trains, never the page's) and gives the trainer back at the end.

    After entering, ``turn`` is "acquired", "cancelled" (``cancel`` was set while waiting)
    or "timed_out" (after ``max_wait`` seconds; None: no limit)."""

    def __init__(self, pool: TrainerPool, cancel: threading.Event, max_wait: float | None):
        self.pool, self.cancel, self.max_wait = pool, cancel, max_wait
        self.ticket = pool.new_ticket()
        self.turn: str | None = None

    @property
    def acquired(self) -> bool:
        return self.turn == "acquired"

    @property
    def position(self) -> int | None:
        """How many runs wait before this one (0: next in line), or None if not waiting."""
        return self.pool.position(self.ticket)

    def __enter__(self) -> Slot:
        self.turn = self.pool.acquire(self.ticket, self.cancel, self.max_wait)
        return self

    def __exit__(self, *exc) -> None:
        if self.acquired:
            self.pool.release(self.ticket)


class TrainerPool:
    """The server-wide line for trainers, first come, first served."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: list[int] = []  # tickets waiting, oldest first
        self._running: set[int] = set()  # tickets training now
        self._threads = 0  # live student trainer threads, waiting or training
        self._tickets = itertools.count(1)

    def slot(self, cancel: threading.Event, max_wait: float | None = None) -> Slot:
        """A place in the line; use it with ``with`` (see ``Slot``)."""
        return Slot(self, cancel, max_wait)

    def new_ticket(self) -> int:
        return next(self._tickets)

    def acquire(self, ticket: int, cancel: threading.Event, max_wait: float | None = None) -> str:
        """Wait for ``ticket``'s turn (use ``slot``, which also gives the trainer back)."""
        deadline = None if max_wait is None else time.monotonic() + max_wait
        with self._cond:
            self._queue.append(ticket)
            self._changed()
            try:
                while not cancel.is_set():
                    if self._queue[0] == ticket and len(self._running) < config.MAX_ACTIVE_RUNS:
                        self._queue.pop(0)
                        self._running.add(ticket)
                        return "acquired"
                    if deadline is not None and time.monotonic() >= deadline:
                        return "timed_out"
                    self._cond.wait(0.5)  # woken by release/wake; the timeout is a safety net
                return "cancelled"
            finally:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                self._changed()

    def release(self, ticket: int) -> None:
        with self._cond:
            self._running.discard(ticket)
            self._changed()

    def wake(self) -> None:
        """Let waiting threads look again (after a cancel, or a change of the limit)."""
        with self._cond:
            self._cond.notify_all()

    def position(self, ticket: int) -> int | None:
        with self._cond:
            return self._queue.index(ticket) if ticket in self._queue else None

    def thread_started(self) -> int:
        with self._cond:
            self._threads += 1
            self._changed()
            return self._threads

    def thread_ended(self) -> int:
        with self._cond:
            self._threads -= 1
            self._changed()
            return self._threads

    def counts(self) -> dict:
        with self._cond:
            return self._counts()

    def _counts(self) -> dict:
        return {"threads": self._threads, "running": len(self._running),
                "waiting": len(self._queue), "limit": config.MAX_ACTIVE_RUNS}

    def _changed(self) -> None:
        """Wake the waiting threads and publish the counts (lock held)."""
        self._cond.notify_all()
        directory = config.status_dir()
        if directory:
            _write_status(directory, {"pid": os.getpid(), "time": time.time(), **self._counts()})


def _write_status(directory: str, counts: dict) -> None:
    """``trainers.json`` in ``directory``, replaced atomically (a reader never sees half)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".trainers.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(counts, f)
        os.replace(tmp, os.path.join(directory, "trainers.json"))
    except OSError:
        log.warning("could not write the trainer counts to %s", directory, exc_info=True)


POOL = TrainerPool()


def active_runs() -> int:
    """Pieces of training going right now, in the whole process."""
    return POOL.counts()["running"]


def waiting_runs() -> int:
    """Pieces of training waiting for a free trainer, in the whole process."""
    return POOL.counts()["waiting"]


def trainer_threads() -> int:
    """Live student training threads (waiting or training), in the whole process."""
    return POOL.counts()["threads"]


class JobFailed(Exception):
    """A job could not be done, for a reason the page shows as it is (no traceback)."""


class BackgroundRun:
    """One piece of a session's training in its own daemon thread, through the pool: it
    waits for its turn, then calls ``work(run)`` and keeps what it returned (``result``)
    or raised (``error``); ``on_end(run)`` runs last, whatever happened, after the trainer
    is given back. Neither may call Streamlit. ``stop()`` ends the wait at once; ``work``
    should watch ``run.cancel`` to end its training."""

    def __init__(self, name: str, work, *, max_wait: float | None = None, on_end=None):
        self.cancel = threading.Event()
        self.slot = POOL.slot(self.cancel, max_wait)
        self.result = self.error = None
        self._work, self._on_end = work, on_end
        self.thread = threading.Thread(target=self._main, daemon=True,
                                       name=f"{TRAINER_THREAD_PREFIX}{name}-{self.slot.ticket}")

    def start(self) -> BackgroundRun:
        alive = POOL.thread_started()
        self.thread.start()
        log.info("trainer thread started: %s (trainer threads alive: %d)", self.thread.name, alive)
        return self

    def _main(self) -> None:
        try:
            with self.slot:
                if self.slot.acquired:
                    self.result = self._work(self)
        except Exception as exc:  # a bug must not kill the server: on_end tells the user
            log.exception("%s failed", self.thread.name)
            self.error = exc
        finally:
            try:
                if self._on_end is not None:
                    self._on_end(self)
            finally:
                alive = POOL.thread_ended()
                log.info("trainer thread ended: %s (trainer threads alive: %d)",
                         self.thread.name, alive)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def waiting(self) -> bool:
        """Still in line for a trainer."""
        return self.alive and self.slot.turn is None

    def stop(self, wait: bool = False, timeout: float = 10.0) -> None:
        self.cancel.set()
        POOL.wake()
        if wait and self.thread is not threading.current_thread():
            self.thread.join(timeout)


class SharedJobs:
    """Training jobs the whole server shares, done one after another by one worker thread,
    each through a slot of the pool (so they never add a trainer), results kept by key.

    A subclass says how to do one job: ``run_job(key) -> result``; it may call
    ``self.report(fraction, stage)`` to show its progress and watch ``self.cancelled``.
    Pages read ``busy``, ``current``, ``waiting``, ``fraction``, ``stage``, ``queued()``,
    ``result(key)`` and ``errors``."""

    thread_name = "mlp-lab-jobs"

    def __init__(self):
        self._lock = threading.Lock()
        self._results: dict = {}
        self._queue: list = []
        self._thread: threading.Thread | None = None
        self.cancelled = threading.Event()  # set by close(): the worker leaves the line
        self.current = None  # the key of the job being done (or waiting for a trainer)
        self.waiting = False  # the current job waits for a free trainer
        self.fraction = 0.0  # of the current job, done
        self.stage = ""  # what the current job says it is doing
        self.errors: dict = {}  # key -> a short reason, for jobs that failed

    def run_job(self, key):
        raise NotImplementedError

    def report(self, fraction: float | None = None, stage: str | None = None) -> None:
        if fraction is not None:
            self.fraction = fraction
        if stage is not None:
            self.stage = stage

    def request(self, keys) -> None:
        """Queue the jobs not done, queued or going yet; start the worker if it sleeps."""
        with self._lock:
            self.cancelled.clear()
            for key in keys:
                if key not in self._results and key not in self._queue and key != self.current:
                    self._queue.append(key)
                    self.errors.pop(key, None)
            if self._queue and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name=self.thread_name)
                self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self.current = None
                    return
                key = self.current = self._queue.pop(0)
                self.fraction, self.stage = 0.0, ""
            result = None
            try:
                self.waiting = True
                # No time limit in line: one shared job, not one per tab.
                with POOL.slot(self.cancelled) as slot:
                    self.waiting = False
                    if not slot.acquired:  # closed: the server is stopping
                        with self._lock:
                            self.current = None
                            self._queue.clear()
                        return
                    result = self.run_job(key)
            except JobFailed as exc:
                with self._lock:
                    self.errors[key] = str(exc)
            except Exception as exc:  # never kill the worker silently: the page says so
                log.exception("%s: job %s failed", type(self).__name__, key)
                with self._lock:
                    self.errors[key] = type(exc).__name__
            finally:
                self.waiting = False
            with self._lock:
                if result is not None:
                    self._results[key] = result

    def result(self, key):
        with self._lock:
            return self._results.get(key)

    def results(self) -> dict:
        with self._lock:
            return dict(self._results)

    def queued(self) -> list:
        with self._lock:
            return list(self._queue)

    @property
    def busy(self) -> bool:
        with self._lock:
            return self.current is not None or bool(self._queue)

    def close(self) -> None:
        """Stop taking jobs: a waiting job leaves the line (tests, server shutdown)."""
        self.cancelled.set()
        with self._lock:
            self._queue.clear()
        POOL.wake()

    def wait(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__} did not finish in time")
            time.sleep(0.05)


def server_wide(factory):
    """``factory()`` made once per server process, on first use, for every session:
    ``get_jobs = server_wide(KerasJobs)``. ``get_jobs.reset()`` forgets it (tests)."""
    lock, made = threading.Lock(), []

    def get():
        with lock:
            if not made:
                made.append(factory())
            return made[0]

    def reset():
        with lock:
            made.clear()

    get.reset = reset
    return get
