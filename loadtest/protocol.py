"""Simulated students without a browser: Streamlit's own websocket protocol.

Each student is one websocket to ``ws://127.0.0.1:PORT/_stcore/stream``, speaking what the
Streamlit frontend speaks (protobuf ``BackMsg`` up, ``ForwardMsg`` down):

* an action is a ``BackMsg.rerun_script`` (a ``ClientState``): the page to run
  (``page_script_hash``), the widget values that changed (a button's ``trigger_value``, the
  canvas component's ``json_value``), and ``fragment_id`` when the widget sits in a
  fragment (the Test page's drawing area);
* the server answers with ``new_session`` (a run begins; ``metadata.run`` names it and the
  fragments it runs), ``delta`` messages (the elements: headings, buttons, the canvas, the
  metrics, alerts, exceptions) and ``script_finished``;
* ``auto_rerun`` asks the client to rerun a fragment every ``interval`` seconds (the live
  charts of a run, ``st.fragment(run_every=...)``): like the browser, the client then sends
  ``rerun_script`` with ``is_auto_rerun`` on a timer, until ``stop_auto_rerun`` or the next
  full run.

An action's time runs from sending its ``rerun_script`` to the ``script_finished`` of the
run it started (matched by ``metadata.run``: a full run, or a run of the action's fragment).
A run that ended ``FINISHED_EARLY_FOR_RERUN`` (a newer request was waiting: under load,
often a fragment's automatic refresh) counts when its answer had already been sent, as the
browser would have shown it; otherwise the action waits for the run that replaces it.
The answer is then checked (the page's title, "Training: step", a predicted digit...). An
``exception`` element, the app's "Something went wrong" box, a missing answer after
``ACTION_TIMEOUT_S`` or a dropped connection is an error.

Only 127.0.0.1; everything is bounded (sessions, actions, every wait).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import random
import time
from dataclasses import dataclass, field

ACTION_TIMEOUT_S = 30.0  # an answer slower than this is an error
STROKE = tuple((140, 40 + 10 * i) for i in range(21))  # a vertical stroke, top to bottom: a "1"
CANVAS_PX = 280  # mlp_lab.drawing.CANVAS_SIZE


@functools.lru_cache(maxsize=8)
def canvas_value(points=STROKE, size: int = CANVAS_PX, width: int = 22) -> str:
    """The canvas component's state after a stroke, as the component sends it: JSON with
    ``drawing.raw`` (Fabric.js objects) and ``drawing.data`` (a PNG data URL of the pixels,
    white ink on black, RGBA)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    pen = ImageDraw.Draw(image)
    pen.line(list(points), fill=(255, 255, 255, 255), width=width, joint="curve")
    for x, y in (points[0], points[-1]):
        pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill="white")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path = [["M", *points[0]]] + [["L", x, y] for x, y in points[1:]]
    raw = {"version": "6.0.0", "background": "#000000",
           "objects": [{"type": "Path", "stroke": "#FFFFFF", "strokeWidth": width,
                        "fill": None, "path": path}]}
    data = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return json.dumps({"drawing": {"raw": raw, "data": data}})


@dataclass
class Run:
    """One script run as the client saw it."""

    run_id: str
    fragments: tuple[str, ...]
    elements: list = field(default_factory=list)  # (kind, Element proto, fragment_id)
    status: int | None = None  # ForwardMsg.ScriptFinishedStatus, once finished
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def texts(self) -> list[str]:
        out = []
        for kind, element, _ in self.elements:
            if kind == "heading":
                out.append(element.heading.body)
            elif kind == "markdown":
                out.append(element.markdown.body)
            elif kind == "alert":
                out.append(element.alert.body)
            elif kind == "progress":
                out.append(element.progress.text)
            elif kind == "metric":
                out.append(f"{element.metric.label}: {element.metric.body}")
            elif kind == "toast":
                out.append(element.toast.body)
        return out

    def notices(self) -> list[str]:
        """What the page told the user: its alerts and toasts."""
        return [element.alert.body if kind == "alert" else element.toast.body
                for kind, element, _ in self.elements if kind in ("alert", "toast")]

    def has_text(self, text: str) -> bool:
        return any(text in t for t in self.texts())

    def metric(self, label: str) -> str | None:
        for kind, element, _ in self.elements:
            if kind == "metric" and element.metric.label == label:
                return element.metric.body
        return None


class ProtocolError(Exception):
    pass


class StudentSession:
    """One browser tab's worth of Streamlit session, driven over the websocket."""

    def __init__(self, ws_url: str, number: int, record, error):
        self.ws_url, self.number = ws_url, number
        self.record, self.error = record, error  # callbacks: (kind, seconds), (text)
        self.ws = None
        self.pages: dict[str, str] = {}  # page name -> page_script_hash
        self.page_hash = ""  # the page the session is on
        self.runs: dict[str, Run] = {}
        self._current: Run | None = None  # the run that began last
        self.finished_log: list = []  # (time, fragments, status) of the last runs: for errors
        self.last_full: Run | None = None  # the last full run's elements: the page on screen
        self.widgets: dict[str, tuple[str, str]] = {}  # label -> (widget id, fragment id)
        self.disabled: set[str] = set()  # labels of the page's disabled buttons
        self.canvas: tuple[str, str] | None = None  # (widget id, fragment id)
        self.inputs: dict[str, str] = {}  # text field label -> widget id
        self.uploader: tuple[str, str] | None = None  # the file uploader: (widget id, fragment id)
        self.session_id = ""  # the server's id of this session (upload URLs carry it)
        self.file_urls: dict[str, asyncio.Future] = {}  # request id -> its file_urls_response
        # The values of the page's widgets, sent with every request as the browser does
        # (Streamlit coalesces a pending request with a newer one and keeps the newer one's
        # values: a refresh sent without the drawing would wipe it).
        self.values: dict[str, tuple[str, object]] = {}
        self._waiters: list = []  # (predicate(run) -> bool, future)
        self._autoreruns: dict[str, asyncio.Task] = {}
        self._reader: asyncio.Task | None = None
        self.closed = False
        self.messages = 0
        self.query_string = ""  # the link's settings, e.g. "model=dense&hidden=128" (no "?")

    # --- the connection --------------------------------------------------------------------
    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(self.ws_url, subprotocols=["streamlit"], max_size=2**26,
                                open_timeout=ACTION_TIMEOUT_S, compression=None)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        self.closed = True
        self._stop_autoreruns()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for payload in self.ws:
                if isinstance(payload, str):
                    continue
                self.messages += 1
                self._handle(ForwardMsg.FromString(payload))
        except Exception as exc:  # a dropped connection: every waiting action fails
            if not self.closed:
                self.error(f"session {self.number}: connection lost: {type(exc).__name__}: {exc}")
        finally:
            for _, future in self._waiters:
                if not future.done():
                    future.set_exception(ProtocolError("the connection closed"))
            self._waiters.clear()

    def _run_of(self, msg) -> Run:
        identity = msg.metadata.run
        run = self.runs.get(identity.script_run_id)
        if run is None:
            run = self.runs[identity.script_run_id] = Run(identity.script_run_id,
                                                          tuple(identity.fragment_ids))
            if len(self.runs) > 200:  # keep memory bounded: forget old runs
                for key in list(self.runs)[:100]:
                    self.runs.pop(key)
        return run

    def _handle(self, msg) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        kind = msg.WhichOneof("type")
        if kind == "new_session":
            run = self._current = self._run_of(msg)  # a session runs one script at a time
            self.session_id = msg.new_session.initialize.session_id or self.session_id
            if not run.fragments:  # a full run: the browser drops its auto-reruns
                self._stop_autoreruns()
                self.page_hash = msg.new_session.page_script_hash
                self.widgets, self.disabled = {}, set()
                self.canvas = self.uploader = None
                self.inputs = {}
        elif kind == "navigation":
            for page in msg.navigation.app_pages:
                self.pages[page.page_name] = page.page_script_hash
        elif kind == "delta":
            run = self._current  # deltas do not name their run: the one begun last
            delta = msg.delta
            if run is None:
                return
            if delta.WhichOneof("type") != "new_element":
                return
            element = delta.new_element
            which = element.WhichOneof("type")
            run.elements.append((which, element, delta.fragment_id))
            if which == "button":
                if element.button.disabled:  # a student cannot press it (a run is going)
                    self.widgets.pop(element.button.label, None)
                    self.disabled.add(element.button.label)
                else:
                    self.widgets[element.button.label] = (element.button.id, delta.fragment_id)
                    self.disabled.discard(element.button.label)
            elif which == "bidi_component":
                self.canvas = (element.bidi_component.id, delta.fragment_id)
            elif which == "text_input":
                self.inputs[element.text_input.label] = element.text_input.id
            elif which == "file_uploader":
                self.uploader = (element.file_uploader.id, delta.fragment_id)
            elif which == "exception":
                self.error(f"session {self.number}: an exception element: "
                           f"{element.exception.type}: {element.exception.message[:200]}")
            elif which == "alert" and "Something went wrong" in element.alert.body:
                self.error(f"session {self.number}: the app's error box: {element.alert.body[:200]}")
        elif kind == "script_finished":
            run = self._run_of(msg)
            run.status = msg.script_finished
            self.finished_log.append((time.perf_counter(), run.fragments, run.status))
            del self.finished_log[:-20]
            run.finished.set()
            if run.status != ForwardMsg.FINISHED_EARLY_FOR_RERUN and not run.fragments:
                self.last_full = run
            for predicate, future in list(self._waiters):
                if not future.done() and predicate(run):
                    future.set_result(run)
            self._waiters = [(p, f) for p, f in self._waiters if not f.done()]
        elif kind == "file_urls_response":
            future = self.file_urls.pop(msg.file_urls_response.response_id, None)
            if future is not None and not future.done():
                future.set_result(msg.file_urls_response)
        elif kind == "auto_rerun":
            fragment, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if fragment and interval > 0 and fragment not in self._autoreruns:
                self._autoreruns[fragment] = asyncio.create_task(self._autorerun(fragment, interval))
        elif kind == "stop_auto_rerun":
            for fragment in msg.stop_auto_rerun.fragment_ids:
                task = self._autoreruns.pop(fragment, None)
                if task is not None:
                    task.cancel()

    def _stop_autoreruns(self) -> None:
        for task in self._autoreruns.values():
            task.cancel()
        self._autoreruns.clear()

    async def _autorerun(self, fragment: str, interval: float) -> None:
        """The browser's setInterval: rerun the fragment every ``interval`` s, timed."""
        while not self.closed:
            await asyncio.sleep(interval)
            sent = time.perf_counter()
            future = self._expect(lambda run: fragment in run.fragments)
            await self._send(fragment_id=fragment, auto=True)
            asyncio.create_task(self._time_auto(future, sent))

    async def _time_auto(self, future, sent: float) -> None:
        try:
            await asyncio.wait_for(future, ACTION_TIMEOUT_S)
            self.record("auto-refresh (run_every)", time.perf_counter() - sent)
        except (asyncio.TimeoutError, ProtocolError, asyncio.CancelledError):
            pass  # a refresh dropped by a page switch is not an error (the browser drops it too)

    def _expect(self, predicate, answered=None):
        """A future resolved by the first finished run matching ``predicate``. A run that
        ended "early for rerun" (a newer request was waiting) counts only if ``answered(run)``
        says its answer had already reached the client, as a browser would have shown it."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        def done(run) -> bool:
            if not predicate(run):
                return False
            if run.status != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return True
            return answered is not None and answered(run)

        future = asyncio.get_running_loop().create_future()
        self._waiters.append((done, future))
        return future

    async def _send(self, page_hash: str | None = None, widgets=(), fragment_id: str = "",
                    auto: bool = False) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string
        state.page_script_hash = self.page_hash if page_hash is None else page_hash
        state.fragment_id = fragment_id
        state.is_auto_rerun = auto
        values = {widget_id: (name, value) for widget_id, (name, value) in self.values.items()}
        values.update({widget_id: (name, value) for widget_id, name, value in widgets})
        for widget_id, (field_name, value) in values.items():
            widget = state.widget_states.widgets.add()
            widget.id = widget_id
            if hasattr(value, "SerializeToString"):  # a message, e.g. the uploader's state
                getattr(widget, field_name).CopyFrom(value)
            else:
                setattr(widget, field_name, value)
        await self.ws.send(msg.SerializeToString())

    async def request_rerun(self) -> None:
        """Ask for a rerun of the page as it is, without waiting for the answer (a flood)."""
        await self._send()

    async def upload(self, http_url: str, name: str, data: bytes, rerun: bool = True) -> tuple[int, object]:
        """Upload a file as the browser's file uploader does: ask for an upload URL over the
        websocket (``file_urls_request``), PUT the file there over HTTP (multipart, with an
        XSRF token made up on the spot: a matching cookie and header pair is all the server
        checks), then rerun with the uploader's new value. Returns the HTTP status and the
        rerun's Run (None if the upload was refused, no answer came, or ``rerun`` is False:
        a file no widget asks for)."""
        import secrets
        import urllib.error
        import urllib.request

        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.Common_pb2 import FileUploaderState, UploadedFileInfo
        from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

        if self.uploader is None:
            self.error(f"session {self.number}: no file uploader on the page")
            return 0, None
        request_id = secrets.token_hex(8)
        answer = self.file_urls[request_id] = asyncio.get_running_loop().create_future()
        msg = BackMsg()
        msg.file_urls_request.request_id = request_id
        msg.file_urls_request.session_id = self.session_id
        msg.file_urls_request.file_names.append(name)
        await self.ws.send(msg.SerializeToString())
        urls = (await asyncio.wait_for(answer, ACTION_TIMEOUT_S)).file_urls[0]
        token = generate_xsrf_token_string()
        boundary = secrets.token_hex(16)
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + \
            f"\r\n--{boundary}--\r\n".encode()
        target = urls.upload_url if urls.upload_url.startswith("http") else http_url + urls.upload_url
        request = urllib.request.Request(target, data=body, method="PUT", headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Xsrftoken": token,
            "Cookie": f"_streamlit_xsrf={token}"})

        def put() -> int:
            try:
                with urllib.request.urlopen(request, timeout=ACTION_TIMEOUT_S) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code
            except OSError:
                return -1
        status = await asyncio.to_thread(put)
        if status != 204 or not rerun:
            return status, None
        widget_id, fragment = self.uploader
        value = FileUploaderState(uploaded_file_info=[UploadedFileInfo(
            name=name, size=len(data), file_id=urls.file_id, file_urls=urls)])
        run = await self.act("upload a model", lambda run: None,
                             widgets=[(widget_id, "file_uploader_state_value", value)],
                             fragment_id=fragment)
        return status, run

    # --- actions -----------------------------------------------------------------------------
    async def act(self, kind: str, check, page_hash: str | None = None, widgets=(),
                  fragment_id: str = "") -> Run | None:
        """Send one rerun, wait for the run it started; time it; check its answer."""
        def answered(run) -> bool:
            return not any(kind == "exception" for kind, _, _ in run.elements) and not check(run)

        if fragment_id:  # a full run (e.g. an st.rerun() elsewhere) redraws the fragment too
            future = self._expect(lambda run: fragment_id in run.fragments or not run.fragments,
                                  answered)
        else:
            future = self._expect(lambda run: not run.fragments, answered)
        sent = time.perf_counter()
        try:
            await self._send(page_hash, widgets, fragment_id)
            run = await asyncio.wait_for(future, ACTION_TIMEOUT_S)
        except asyncio.TimeoutError:
            since = [(round(t - sent, 1), [f[:6] for f in fragments], status)
                     for t, fragments, status in self.finished_log if t >= sent]
            self.error(f"session {self.number} {kind}: no answer in {ACTION_TIMEOUT_S:g} s "
                       f"(runs finished meanwhile: {since[:8]}, fragment {fragment_id[:6]!r})")
            return None
        except Exception as exc:
            self.error(f"session {self.number} {kind}: {type(exc).__name__}: {exc}")
            return None
        self.record(kind, time.perf_counter() - sent)
        problem = check(run)
        if problem:
            self.error(f"session {self.number} {kind}: {problem}")
        return run

    async def open(self) -> Run | None:
        def check(run):
            return None if run.has_text("MLP Lab") and run.has_text("Steps trained") else \
                "the Model page did not come (no title or no sidebar status)"
        return await self.act("open the app", check, page_hash="")

    async def go(self, name: str, title: str | None = None) -> Run | None:
        title = title or name

        def check(run):
            if not any(kind == "heading" and element.heading.body == title
                       for kind, element, _ in run.elements):
                return f"the page's title {title!r} did not come"
            return None
        if name not in self.pages:
            self.error(f"session {self.number}: no page called {name!r} in the navigation")
            return None
        self.values.clear()  # the page's widgets go with it
        self._stop_autoreruns()  # the browser stops the page's timers before it asks
        return await self.act(f"switch to {name}", check, page_hash=self.pages[name])

    def _button(self, label: str) -> tuple[str, str] | None:
        found = self.widgets.get(label)
        if found is None:
            self.error(f"session {self.number}: no button {label!r} on the page")
        return found

    async def press(self, label: str, kind: str, check) -> Run | None:
        found = self._button(label)
        if found is None:
            return None
        widget_id, fragment = found
        return await self.act(kind, check, widgets=[(widget_id, "trigger_value", True)],
                              fragment_id=fragment)

    async def train(self) -> Run | None:
        if "Train" in self.disabled:
            return None  # the last run still goes (or waits): nothing to press, as in a browser

        def check(run):
            return None if run.has_text("Training: step") or run.has_text("Waiting for a free trainer") \
                or run.has_text("Getting the training images ready") else "no sign of the run starting"
        return await self.press("Train", "press Train", check)

    async def draw(self) -> Run | None:
        if self.canvas is None:
            self.error(f"session {self.number}: no canvas on the page")
            return None
        widget_id, fragment = self.canvas

        def check(run):
            value = run.metric("Prediction")
            return None if value is not None and value.strip().isdigit() else \
                f"no predicted digit (the Prediction metric says {value!r})"
        self.values[widget_id] = ("json_value", canvas_value())
        return await self.act("draw and predict", check, fragment_id=fragment)

    async def clear(self) -> Run | None:
        def check(run):
            value = run.metric("Prediction")
            return None if value == "–" else f"after Clear the prediction says {value!r}"
        if self.canvas is not None:
            self.values.pop(self.canvas[0], None)  # Clear mounts a new, empty canvas
        return await self.press("Clear", "clear", check)


    async def open_class_page(self, code: str) -> Run | None:
        """The teacher: the Class page, then its code typed into the password field and the
        form submitted (as a browser sends a form: the field's value with the button)."""
        if await self.go("Class") is None:
            return None
        field, button = self.inputs.get("Teacher code"), self.widgets.get("Open the Class page")
        if field is None or button is None:
            self.error(f"session {self.number}: the Class page asks for no code")
            return None

        def check(run):
            return None if run.has_text("The class at a glance") else "the code did not open the Class page"
        return await self.act("teacher: type the code", check,
                              widgets=[(field, "string_value", code), (button[0], "trigger_value", True)])


async def _connected(session: StudentSession, error, who: str) -> bool:
    try:
        await asyncio.wait_for(session.connect(), ACTION_TIMEOUT_S)
    except Exception as exc:
        error(f"{who}: could not connect: {type(exc).__name__}: {exc}")
        return False
    return True


async def teacher(ws_url: str, code: str, record, error, opened: asyncio.Event,
                  close_now: asyncio.Event) -> None:
    """The teacher's browser tab: the Class page, logged in with the code, left open; its
    live board and leaderboard refresh themselves (run_every), each refresh timed through
    ``record`` as "teacher: board refresh"."""
    def teacher_record(kind: str, seconds: float) -> None:
        record("teacher: board refresh" if kind == "auto-refresh (run_every)" else kind, seconds)

    session = StudentSession(ws_url, -1, teacher_record, error)
    try:
        if not await _connected(session, error, "teacher"):
            return
        if await session.open() is not None:
            await session.open_class_page(code)
        opened.set()
        await close_now.wait()
    finally:
        opened.set()
        await session.close()


# --- one student's lesson ------------------------------------------------------------------------
TEACHING_PAGES = ("Lessons", "Notebook vs modern", "Inside the network")


async def student(ws_url: str, number: int, trains: bool, rounds: int, record, error,
                  opened: asyncio.Event, done: asyncio.Event, close_now: asyncio.Event,
                  rng: random.Random, think=(0.5, 1.5)) -> None:
    session = StudentSession(ws_url, number, record, error)
    try:
        if not await _connected(session, error, f"session {number}"):
            return
        first = await session.open()
        opened.set()
        if first is None:
            return

        async def pause():
            await asyncio.sleep(rng.uniform(*think))

        for round_ in range(rounds):
            teaching = TEACHING_PAGES[(number + round_) % len(TEACHING_PAGES)]
            if trains:
                plan = ["Train", "train", "Weights", "Test", "draw", "clear", "Train"]
            else:
                plan = ["Test", "draw", "clear", "Weights", teaching, "Train", "Model"]
            for step in plan:
                await pause()
                if step == "train":
                    await session.train()
                elif step == "draw":
                    await session.draw()
                elif step == "clear":
                    await session.clear()
                elif step == "Model":
                    await session.go("Model", "MLP Lab")
                else:
                    await session.go(step)
        done.set()
        await close_now.wait()  # the bell: every student leaves at once
    finally:
        opened.set()
        done.set()
        await session.close()
