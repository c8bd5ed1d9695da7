"""Streamlit glue: which student this browser is, their lab, the sidebar status, the toasts.

Each browser gets a random student id (``mlp_lab.store.new_student_id``) in a cookie, set
by a line of JavaScript and sent back with every new connection, so a reload or a reconnect
finds the same student. Not in the URL: the address bar holds settings that students share,
and a shared link must never hand over someone's model. The lab itself comes from
``mlp_lab.keeper`` (in memory, else the store): a session-scoped cached function attaches
the session to it, and Streamlit's release of that cache entry (about half a second after
the websocket drops) detaches it; the keeper keeps the lab, and its run, for a while in
case the browser comes back. The lab is also in ``st.session_state["lab"]`` (tests).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
import threading
import traceback
from collections import OrderedDict

import numpy as np
import streamlit as st

from mlp_core.blas import set_blas_threads

from . import config, drawing, figures
from .keeper import Attached, get_keeper
from .lab import FRESH_SOURCE, LabEnded, LabSession, LabStatus
from .ratelimit import TokenBucket
from . import uploads
from .store import is_student_id, new_student_id
from .text import NAME_CHARS, plain

# One BLAS thread for the whole server process: many sessions train at once on a few cores,
# and OpenBLAS's own threads waiting for each other made training many times slower
# (see mlp_core/blas.py). dashboard.py also sets OPENBLAS_NUM_THREADS before NumPy loads.
set_blas_threads(1)

# Import pandas now, completely, before sessions run in parallel: Plotly looks pandas up in
# sys.modules without importing it, and under load a session's chart saw a half-imported
# pandas (another session's thread was importing it): "partially initialized module".
try:
    import pandas  # noqa: F401
except ImportError:  # Plotly and Streamlit work without it
    pass

log = logging.getLogger("mlp_lab")


def _keep_clicks_in_replaced_fragments(app_session, request) -> None:
    """A click inside a fragment (Clear, a stroke on the canvas) that reaches the server
    while a full run redraws the page (the sidebar's when a run ends or leaves the line)
    names a fragment that run has not made again yet, and Streamlit drops such a request
    unseen: the student's click is lost (on a busy machine, the 5-minute class of
    ``loadtest/hostile.py`` had 3-5 clicks of training students that got no answer). Run
    the whole page with it instead; a timer's refresh of a fragment that is gone is still
    dropped."""
    fragment = request.fragment_id
    has_fragment = getattr(app_session, "has_fragment", None)
    if fragment and not request.is_auto_rerun and has_fragment is not None and not has_fragment(fragment):
        request.fragment_id = ""


def _limit_rerun_requests() -> None:
    """Drop a session's rerun requests beyond ``config.RERUN_RATE`` a second (after a burst
    of ``config.RERUN_BURST``), as they arrive: before Streamlit interrupts and restarts the
    script for each one. Measured: one websocket client sending 400 a second left other
    students' pages unanswered for 20-30 s, with or without a limit inside the script
    (``loadtest/flood.py``), because the cost is Streamlit's own work per request. This
    wraps ``AppSession.handle_backmsg`` (Streamlit's internals: if a future version moves
    it, the app works on, without the limit, and says so in the log)."""
    try:
        from streamlit.runtime.app_session import AppSession  # noqa: PLC0415 (internal, may move)
    except ImportError:
        log.warning("no rate limit on rerun requests: streamlit.runtime.app_session is gone")
        return
    original = getattr(AppSession, "handle_backmsg", None)
    if original is None or getattr(original, "mlp_lab_limited", False):
        return

    def handle_backmsg(self, msg):
        if msg.WhichOneof("type") == "rerun_script":
            bucket = self.__dict__.get("_mlp_lab_reruns")
            if bucket is None:
                bucket = self.__dict__.setdefault(
                    "_mlp_lab_reruns", TokenBucket(config.RERUN_RATE, config.RERUN_BURST))
            if not bucket.allow():
                if bucket.refused in (1, 100) or bucket.refused % 10_000 == 0:
                    log.warning("session %s… sends too many rerun requests: %d dropped so far",
                                str(getattr(self, "id", "?"))[:8], bucket.refused)
                return
            _keep_clicks_in_replaced_fragments(self, msg.rerun_script)
        return original(self, msg)

    handle_backmsg.mlp_lab_limited = True
    AppSession.handle_backmsg = handle_backmsg


_limit_rerun_requests()
uploads.install()
if not log.handlers:  # the server's console shows when runs start, end and sessions close
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s mlp_lab %(levelname)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False

POLL_SECONDS = 1.0  # the Train page's live chart refresh while a run goes
SIDEBAR_POLL_SECONDS = 2.0  # also while a run waits in line: it notices the run starting
WAITING_POLL_SECONDS = 3.0  # the Train page while the run waits: only its place in line moves
NOTICE_ICONS = {"success": ":material/check_circle:", "info": ":material/info:",
                "error": ":material/warning:"}


class FigureCache:
    """Plotly figures shared by every session of the server, keyed by what they show.

    Building a figure is the most expensive part of a page (Plotly validates every
    property in Python, holding the GIL), and most figures repeat: every fresh model
    starts from the same weights (seed 0), a run waiting for a trainer refreshes charts
    that have not changed, a student comes back to a page. So a figure is built once per
    content (the key holds a digest of the arrays drawn) and reused; st.plotly_chart only
    reads it. Bounded: the least recently used figures are dropped beyond ``size``."""

    def __init__(self, size: int = 96):
        self.size = size
        self._figures: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key, build):
        with self._lock:
            figure = self._figures.get(key)
            if figure is not None:
                self._figures.move_to_end(key)
                self.hits += 1
                return figure
            self.misses += 1
        figure = build()  # outside the lock: two sessions may build the same figure, rarely
        with self._lock:
            self._figures[key] = figure
            self._figures.move_to_end(key)
            while len(self._figures) > self.size:
                self._figures.popitem(last=False)
        return figure

    def clear(self) -> None:
        with self._lock:
            self._figures.clear()


FIGURES = FigureCache()


def show_chart(where, fig, *, key: str, alt: str | None = None) -> None:
    """``where.plotly_chart(fig)`` (``where``: ``st`` or a column) with a text alternative:
    ``alt``, else one line made from the figure (its kind, title and where its curves end),
    so a screen reader says what each chart shows."""
    where.plotly_chart(fig, key=key, alt=alt or figures.figure_summary(fig))


class OneLineLog(logging.Filter):
    """Drops the traceback from a log record, keeping its one line: for what a hand-made
    websocket message causes (Streamlit logs a canvas value that is not JSON with its
    whole traceback, once per message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} [{type(exc).__name__}]"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


# The canvas's state as the browser sent it: Streamlit logs one that is not JSON and uses
# an empty one instead (mlp_lab.drawing then reads it as "nothing drawn").
_BIDI_LOG = logging.getLogger("streamlit.components.v2.bidi_component.serialization")
if not any(isinstance(f, OneLineLog) for f in _BIDI_LOG.filters):
    _BIDI_LOG.addFilter(OneLineLog())


def _without_raw_drawing(value):
    """The canvas's state without its Fabric.js stroke objects (``drawing.raw``), which the
    app never reads (it reads the PNG, ``drawing.data``). Kept, they are the bulk of a
    session's widget state: a crafted 1.9 MB drawing parses to 12 MB of Python objects,
    held through the 2 minutes Streamlit keeps a closed session (``loadtest/hostile.py``)."""
    if isinstance(value, dict):
        drawing = value.get("drawing")
        if isinstance(drawing, dict) and drawing.get("raw") is not None:
            value["drawing"] = {**drawing, "raw": None}
    return value


def _read_bad_json_as_text() -> None:
    """Streamlit 1.67 parses a component's state (JSON text from the browser) before the
    script runs, to see whether it changed, and text that is not JSON raises there: the
    page shows Streamlit's own exception box, which no try/except of ours can catch. Give
    such text, unparsed, to the component's own reader, which was written for it (it logs
    one line and uses an empty state). The canvas's stroke objects are dropped on the way
    (``_without_raw_drawing``). If a later Streamlit moves this function, nothing
    is changed (tests/test_hostile_text_app.py then shows whether it is still needed)."""
    try:
        from streamlit.runtime.state import common  # noqa: PLC0415 (Streamlit's internals)
        from streamlit.runtime.state import session_state as state_module  # noqa: PLC0415
    except ImportError:
        return
    original = getattr(common, "unpack_widget_state_value", None)
    if original is None or getattr(original, "reads_bad_json_as_text", False):
        return

    def unpack_widget_state_value(widget_state):
        try:
            return _without_raw_drawing(original(widget_state))
        except ValueError:  # json.JSONDecodeError: only a json_value is parsed
            if widget_state.WhichOneof("value") != "json_value":
                raise
            return widget_state.json_value

    unpack_widget_state_value.reads_bad_json_as_text = True
    for module in (common, state_module):
        if getattr(module, "unpack_widget_state_value", None) is original:
            module.unpack_widget_state_value = unpack_widget_state_value


_read_bad_json_as_text()


def digest(*arrays) -> str:
    """A short fingerprint of arrays (their dtype, shape and bytes), for FigureCache keys."""
    h = hashlib.blake2b(digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(memoryview(array).cast("B"))
    return h.hexdigest()


STUDENT_COOKIE = "mlp_lab_student"
STUDENT_KEY = "student_id"  # this session's student id, in st.session_state


def _detach(attachment: tuple[str, Attached]) -> None:
    get_keeper().detach(attachment[0])


@st.cache_resource(scope="session", on_release=_detach,
                   show_spinner="Loading the 70,000 MNIST images (once per server)…")
def _attach(student_id: str) -> tuple[str, Attached]:
    """Attach this session to the student's lab; released when the websocket drops."""
    attached = get_keeper().attach(student_id)
    _warm_up_once()
    return student_id, attached


def student_id() -> str:
    """This browser's student id: from its cookie, else a new one (which the first script
    run of the session writes into the cookie)."""
    sid = st.session_state.get(STUDENT_KEY)
    if sid is None:
        cookie = st.context.cookies.get(STUDENT_COOKIE)
        sid = cookie if is_student_id(cookie) else new_student_id()
        st.session_state[STUDENT_KEY] = sid
        st.session_state["student_cookie_due"] = True  # (re)write it: a new id, or a later expiry
    return sid


def _write_cookie(sid: str) -> None:
    """The browser keeps the id as long as the store keeps its work (SameSite=Strict: sent
    only to this server's own pages). Readable by the page's script, which sets it."""
    max_age = int(config.STORE_KEEP_DAYS * 86_400)
    cookie = json.dumps(f"{STUDENT_COOKIE}={sid}; Max-Age={max_age}; Path=/; SameSite=Strict")
    st.html(f"<script>document.cookie = {cookie} + (location.protocol === 'https:' ? '; Secure' : '');"
            "</script>", unsafe_allow_javascript=True, width="content")


_warmed_up = False


def _warm_up_once() -> None:
    """Pay Plotly's first-use cost while the first visitor waits for MNIST anyway."""
    global _warmed_up
    if not _warmed_up:
        figures.warm_up()
        _warmed_up = True


def _leave_legacy_pages_mode() -> None:
    """A folder named pages/ next to the entrypoint is also Streamlit's legacy multipage
    folder. Until ``st.navigation`` first runs in a server process, Streamlit is in that
    legacy mode, and if the first visit of a fresh server opens a page's URL (say /train),
    it runs the page file alone: no sidebar status, and a page list of every file. Every
    page calls ``get_lab`` first, so it is caught here: switch the mode off and rerun
    through dashboard.py. (AppTest re-enters the legacy mode before every run, so this
    also makes ``AppTest.switch_page`` run the entrypoint, as a browser does.)"""
    try:
        from streamlit.runtime.pages_manager import PagesManager  # noqa: PLC0415 (may vanish)
    except ImportError:  # a future Streamlit without the legacy mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def get_lab() -> LabSession:
    """This browser's lab: in memory, else as last saved, else fresh."""
    _leave_legacy_pages_mode()
    sid = student_id()
    _, attached = _attach(sid)
    lab = attached.lab
    st.session_state["lab"] = lab
    if "welcomed" not in st.session_state:  # the first script run of this browser session
        st.session_state["welcomed"] = True
        st.session_state["steps_choice"] = lab.train_steps
        if attached.welcome:
            st.toast(attached.welcome, icon=":material/waving_hand:", duration="long")
    return lab


def clear_sessions() -> None:
    """Close and forget every session's lab in this process (tests: every AppTest shares
    one session id). Works outside a script run, unlike ``_attach.clear()``."""
    st.cache_resource.clear()
    get_keeper().close_all()
    get_keeper.reset()


def show_store_problems() -> None:
    """The store's messages for this student (a full disk...), each once; the lab goes on."""
    sid = st.session_state.get(STUDENT_KEY)
    if sid:
        for problem in get_keeper().pop_problems(sid):
            st.toast(problem, icon=":material/cloud_off:", duration="long")
    if st.session_state.pop("student_cookie_due", False) and sid:
        with st.sidebar:
            _write_cookie(sid)


def show_notices(lab: LabSession, *, toast: bool = True) -> None:
    """A toast for each run that ended since the last script run (finished, diverged...),
    unless ``toast`` is False (the Train page says it in the page); the last one is kept
    for the Train page, with the model it is about."""
    for kind, message in lab.pop_notices():
        st.session_state["last_notice"] = (kind, message, lab.trainer_id)
        if toast:
            st.toast(message, icon=NOTICE_ICONS.get(kind), duration="long")


def last_run_notice(notice, trainer_id: int) -> tuple[str, str] | None:
    """``(kind, message)`` of the last run's notice if it is about the model in place now
    (``trainer_id``), else None: after a lesson's Start or an upload, the previous model's
    "Finished ..." is not this model's."""
    if not notice or len(notice) != 3 or notice[2] != trainer_id:
        return None
    return notice[0], notice[1]


# Streamlit's toast is an ARIA alertdialog without a name (axe-core: aria-dialog-name,
# serious): it is named by its own text, so a screen reader says what it is about. On a
# narrow screen Plotly's toolbar, always shown on touch, covers the charts' titles: hidden
# there (pinch to zoom, double-tap to reset). The KaTeX formulas of the teaching pages
# scroll sideways on a phone: made focusable so a keyboard can scroll them too.
_ACCESSIBILITY_JS = """<script>
if (!window.mlpLabA11y) {
  window.mlpLabA11y = true;
  const fix = () => {
    document.querySelectorAll('[data-testid="stToast"]').forEach((toast) => {
      const body = toast.querySelector('[data-testid="stMarkdownContainer"]') || toast;  // not the icon's name
      const text = (body.innerText || '').replace(/\\s+/g, ' ').trim().slice(0, 200);
      const dialog = toast.closest('[role="alertdialog"]') || toast;
      if (text && dialog.getAttribute('aria-label') !== text) dialog.setAttribute('aria-label', text);
    });
    document.querySelectorAll('.katex-display').forEach((formula) => {
      if (!formula.hasAttribute('tabindex')) formula.setAttribute('tabindex', '0');
    });
  };
  new MutationObserver(fix).observe(document.body, {childList: true, subtree: true});
  fix();
}
</script>"""
_ACCESSIBILITY_CSS = """<style>
@media (max-width: 900px) { [data-testid="stPlotlyChart"] .modebar-container { display: none; } }
</style>"""


def accessibility_fixes() -> None:
    """What Streamlit's own elements lack (see above); on every page, costs nothing visible."""
    with st.sidebar:
        st.html(_ACCESSIBILITY_CSS + _ACCESSIBILITY_JS, unsafe_allow_javascript=True, width="content")


def fmt_loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}" if value < 10 else f"{value:.3g}"


def status_lines(status: LabStatus) -> list[str]:
    """The sidebar's words: pure, so tests can read them without Streamlit."""
    model = status.description
    lines = [f"**{model}**", f"{status.n_params:,} weights and biases"]
    lines.append(f"Steps trained: **{status.step:,}**" + (f" ({status.epochs:.2f} passes over the data)"
                                                          if status.step else ""))
    lines.append(f"Last loss: **{fmt_loss(status.last_loss)}**")
    if status.test_accuracy is None:
        lines.append("Test accuracy: not measured yet (Test page)")
    else:
        lines.append(f"Test accuracy: **{status.test_accuracy:.1%}** (at step {status.test_step:,})")
    if status.waiting:
        lines.append(":orange-badge[:material/hourglass_top: Waiting for a free trainer] "
                     "it starts on its own")
    elif status.running:
        lines.append(f":green-badge[:material/play_arrow: Training] "
                     f"{status.run_done:,} of {status.run_steps:,} steps")
    elif status.status == "diverged":
        lines.append(":red-badge[:material/error: Last run diverged] see the Train page")
    else:
        lines.append(":gray-badge[Not training]")
    if status.source != FRESH_SOURCE:
        lines.append(f"Loaded from {plain(status.source, NAME_CHARS)}")  # a file's or a kept model's name
    return lines


def waiting_text(status: LabStatus) -> str:
    """What the Train page says while a run waits in line for one of the server's trainers."""
    ahead = status.queue_position or 0
    line = ("you are next in line" if ahead == 0 else
            f"{ahead} run{'s' if ahead > 1 else ''} of other students {'are' if ahead > 1 else 'is'} "
            "ahead of yours")
    return (f"**Waiting for a free trainer**: this server trains {status.max_runs} "
            f"network{'s' if status.max_runs != 1 else ''} at once and all are busy; {line}. "
            "Your run starts on its own, keep this page open (Stop leaves the line).")


def render_sidebar(lab: LabSession) -> None:
    """The compact status of the model, on every page; refreshes itself during a run."""
    polling, waited = lab.running, lab.waiting

    # While a run trains, as often as the Train page's chart, so the two show the same step.
    @st.fragment(run_every=(SIDEBAR_POLL_SECONDS if waited else POLL_SECONDS) if polling else None)
    @guarded
    def sidebar_status():
        status = lab.status()
        with st.container(border=True, key="sidebar_status"):
            st.markdown("  \n".join(status_lines(status)))
        if polling and (not status.running or (waited and not status.waiting)):
            # The run ended (redraw every page element once, stop polling), or it left
            # the line and trains now (the pages poll faster while it trains).
            st.rerun()

    with st.sidebar:
        sidebar_status()


def canvas_key(prefix: str, round_key: str) -> tuple[str, str | None]:
    """The key of this run's drawing canvas (``prefix_<round>``) and None; or, when the
    browser sent a state no canvas sends (a hand-made message), the key of a fresh,
    empty canvas and the message to show instead of a drawing. One line in the log."""
    key = f"{prefix}_{st.session_state.get(round_key, 0)}"
    state = st.session_state.get(key)
    if drawing.canvas_state_ok(state):
        return key, None
    log.warning("canvas %s: the browser sent a value no canvas sends; a fresh canvas replaces it", key)
    return _next_canvas(prefix, round_key), drawing.CLEARED


def canvas_failed(prefix: str, round_key: str, exc: Exception) -> str:
    """The canvas component raised on the browser's value: one line in the log, a fresh
    canvas at the next run, and the message to show (never a traceback)."""
    log.warning("canvas %s: the component could not read the browser's value (%s); a fresh canvas "
                "replaces it", prefix, type(exc).__name__)
    _next_canvas(prefix, round_key)
    return drawing.CLEARED


def _next_canvas(prefix: str, round_key: str) -> str:
    st.session_state[round_key] = st.session_state.get(round_key, 0) + 1
    return f"{prefix}_{st.session_state[round_key]}"


def friendly_error(exc: BaseException) -> None:
    """Instead of a traceback: say what happened and what to do; the details go to the log."""
    if isinstance(exc, LabEnded):  # a page of a session whose lab left memory: nothing broke
        st.info(str(exc), icon=":material/refresh:")
        return
    log.error("page error: %s", "".join(traceback.format_exception(exc)))
    st.error("Something went wrong on this page. Your model is safe: try the page again, or "
             "press Reset on the Model page if it keeps happening. "
             f"(Details for the teacher are in the server's console: {type(exc).__name__}.)")


def guarded(function):
    """For fragments, which rerun on their own (outside dashboard.py's try/except): an
    error becomes the friendly message instead of Streamlit's exception box."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as exc:  # st.rerun() raises a BaseException: it passes through
            if config.DEBUG:
                raise
            friendly_error(exc)
    return wrapper
