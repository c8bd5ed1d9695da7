"""The teacher's code: what opens the Class page.

The server is started with ``MLP_LAB_TEACHER_CODE=<code>`` (or the same key in
``.streamlit/secrets.toml``). The page asks for it in a password field; ``CodeGate``
compares in constant time (``hmac.compare_digest`` of two SHA-256 digests, so neither the
length nor the first differing character shows in the time) and slows down wrong codes:

- per browser session: after ``FREE_TRIES`` wrong codes, each next try must wait 2, 4,
  8 ... seconds (at most ``MAX_SESSION_WAIT``);
- for the whole server: after ``SERVER_FREE`` wrong codes within ``SERVER_WINDOW``
  seconds (whoever typed them: a reload makes a new session), every session waits
  ``SERVER_WAIT`` seconds between tries. Counted in the store when the page gives one
  (``shared``), so several server processes behind a proxy count together; in this
  process alone when the store cannot be reached.

A try too soon is refused with "wait N s" at once: nothing sleeps, so no script thread is
held. The code is never logged, never put in a URL, never shown. No Streamlit here.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Protocol

from .store import StoreError

log = logging.getLogger("mlp_lab")

CODE_KEY = "MLP_LAB_TEACHER_CODE"
MIN_CODE_CHARS = 6  # a shorter configured code is refused (the page says why)
MAX_TRY_CHARS = 200  # a longer try is refused unread
FREE_TRIES = 3
MAX_SESSION_WAIT = 60.0
SERVER_FREE = 10
SERVER_WINDOW = 60.0
SERVER_WAIT = 5.0


def configured_code(environ=None, secrets_get: Callable[[str], object] | None = None) -> str | None:
    """The teacher code from the environment, else from Streamlit's secrets (``secrets_get``
    returns None or raises when there is no secrets file or no such key); None if unset."""
    environ = os.environ if environ is None else environ
    code = environ.get(CODE_KEY)
    if not code and secrets_get is not None:
        try:
            code = secrets_get(CODE_KEY)
        except Exception:  # noqa: BLE001 (no secrets file, a damaged one: the same as no code)
            code = None
    if code is None:
        return None
    code = str(code).strip()
    return code or None


def code_problem(code: str | None) -> str | None:
    """Why a configured code cannot be used (too short), or None."""
    if code is not None and len(code) < MIN_CODE_CHARS:
        return (f"The teacher code set on this server is too short: use at least {MIN_CODE_CHARS} "
                "characters, then restart the server.")
    return None


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str  # for the page: empty when ok
    wait: float = 0.0  # seconds before the next try is looked at


class CodeGate:
    """Checks tries of the teacher code, slowing down wrong ones (see the module)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sessions: int = 10_000):
        self.clock = clock
        self._sessions: OrderedDict[str, tuple[int, float]] = OrderedDict()  # id -> (wrong, next try at)
        self._server_wrong: deque[float] = deque()  # times of recent wrong codes, any session
        self._server_next = 0.0
        self._max_sessions = sessions
        self._lock = threading.Lock()
        self._store_trouble = False  # logged once

    def check(self, session: str, attempt, code: str, shared: SharedTries | None = None) -> Verdict:
        """Whether ``attempt`` (typed in session ``session``) is ``code``. ``shared``: the
        store, where every process counts the wrong codes (see the module)."""
        now = self.clock()
        shared_wait = self._shared(lambda: shared.teacher_code_wait()) if shared is not None else None
        with self._lock:
            wrong, next_at = self._sessions.get(session, (0, 0.0))
            wait = max(next_at - now, self._server_next - now, shared_wait or 0.0)
            if wait > 0:
                seconds = math.ceil(wait)
                return Verdict(False, f"Too many wrong codes: wait {seconds} s, then try again.", wait)
        if not isinstance(attempt, str) or len(attempt) > MAX_TRY_CHARS:
            attempt = ""
        ok = hmac.compare_digest(_digest(attempt), _digest(code))
        with self._lock:
            if ok:
                self._sessions.pop(session, None)
                return Verdict(True, "")
            wrong += 1
            delay = 0.0 if wrong < FREE_TRIES else min(2.0 ** (wrong - FREE_TRIES + 1), MAX_SESSION_WAIT)
            self._sessions[session] = (wrong, now + delay)
            self._sessions.move_to_end(session)
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
            self._server_wrong.append(now)
            while self._server_wrong and now - self._server_wrong[0] > SERVER_WINDOW:
                self._server_wrong.popleft()
            if len(self._server_wrong) >= SERVER_FREE:
                self._server_next = now + SERVER_WAIT
                delay = max(delay, SERVER_WAIT)
            count = len(self._server_wrong)
        if shared is not None:
            counted = self._shared(lambda: shared.count_wrong_teacher_code(SERVER_WINDOW, SERVER_FREE, SERVER_WAIT))
            if counted is not None:
                if counted >= SERVER_FREE:
                    delay = max(delay, SERVER_WAIT)
                count = max(count, counted)
        if count in (SERVER_FREE, 50) or count % 500 == 0:
            log.warning("teacher code: %d wrong tries in the last %.0f s (the code is not logged)",
                        count, SERVER_WINDOW)
        text = "That is not the teacher code."
        if delay:
            text += f" Wait {math.ceil(delay)} s before the next try."
        return Verdict(False, text, delay)


    def _shared(self, ask):
        """What the store answers, or None if it cannot (the local count goes on alone)."""
        try:
            return ask()
        except StoreError as exc:
            if not self._store_trouble:
                log.warning("teacher code: wrong tries counted in this process only: %s", exc)
            self._store_trouble = True
            return None


class SharedTries(Protocol):
    """Where every server process counts wrong teacher codes (``mlp_lab.store.Store``)."""

    def teacher_code_wait(self) -> float: ...

    def count_wrong_teacher_code(self, window: float, free: int, wait: float) -> int: ...


GATE = CodeGate()  # one per server process (its count shared through the store)
