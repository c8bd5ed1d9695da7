"""Streamlit glue: bounds on what uploaded files can hold in the server's memory.

Streamlit keeps every file a session uploads in memory until that session ends (its
``MemoryUploadedFileManager``), whether or not a widget ever asks for it: the upload URL
takes any file id, and a session's files stay through the reconnect window after its tab
closes. One crafted client uploading 20 MB files in a loop held +500 MB in a minute
(``loadtest/hostile.py``). Here, wrapping the manager's ``add_file`` (Streamlit's internals:
if a future version moves it, the app works on without these bounds and says so in the log):

* a session keeps its ``config.UPLOADS_KEPT_PER_SESSION`` newest files; older ones go (the
  Model page reads a model file at once, then forgets it with ``forget``);
* a session may upload ``config.UPLOAD_BURST`` files at once, then one every
  ``1 / config.UPLOAD_RATE`` seconds (HTTP 429 beyond: the uploader shows it failed);
* all sessions together hold at most ``config.UPLOADS_TOTAL_BYTES`` (HTTP 503 beyond).
"""

from __future__ import annotations

import logging
import threading

from . import config
from .ratelimit import TokenBucket

log = logging.getLogger("mlp_lab")
_buckets: dict[str, TokenBucket] = {}  # session id -> its upload allowance
_lock = threading.Lock()


def _refuse(status: int, detail: str):
    from starlette.exceptions import HTTPException  # noqa: PLC0415 (Streamlit's own web server)

    return HTTPException(status_code=status, detail=detail)


def install() -> None:
    try:
        from streamlit.runtime.memory_uploaded_file_manager import (  # noqa: PLC0415 (internal)
            MemoryUploadedFileManager,
        )
    except ImportError:
        log.warning("no bounds on uploaded files: streamlit's MemoryUploadedFileManager is gone")
        return
    original_add = MemoryUploadedFileManager.add_file
    original_remove_session = MemoryUploadedFileManager.remove_session_files
    if getattr(original_add, "mlp_lab_bounded", False):
        return

    def add_file(self, session_id, file):
        with _lock:
            bucket = _buckets.get(session_id)
            if bucket is None:
                bucket = _buckets[session_id] = TokenBucket(config.UPLOAD_RATE, config.UPLOAD_BURST)
            if not bucket.allow():
                if bucket.refused in (1, 100):
                    log.warning("session %s… uploads too often: %d uploads refused so far",
                                session_id[:8], bucket.refused)
                raise _refuse(429, "Too many uploads: wait a few seconds and try again.")
            held = sum(len(f.data) for files in list(self.file_storage.values())
                       for f in list(files.values()))
            mine = self.file_storage.get(session_id, {})
            # what this session's oldest files free, since they are about to go
            doomed = list(mine)[:max(0, len(mine) + 1 - config.UPLOADS_KEPT_PER_SESSION)]
            freed = sum(len(mine[file_id].data) for file_id in doomed if file_id in mine)
            if held - freed + len(file.data) > config.UPLOADS_TOTAL_BYTES:
                log.warning("uploads refused: the server holds %.0f MB of uploaded files", held / 2**20)
                raise _refuse(503, "The server holds too many uploaded files right now: try "
                                   "again in a minute.")
            for file_id in doomed:
                self.remove_file(session_id, file_id)
        original_add(self, session_id, file)

    def remove_session_files(self, session_id):
        with _lock:
            _buckets.pop(session_id, None)
        original_remove_session(self, session_id)

    add_file.mlp_lab_bounded = True
    MemoryUploadedFileManager.add_file = add_file
    MemoryUploadedFileManager.remove_session_files = remove_session_files


def forget(file) -> None:
    """Free an uploaded file's bytes once the page has read them (Streamlit would keep them
    until the session ends)."""
    try:
        from streamlit.runtime import get_instance  # noqa: PLC0415
        from streamlit.runtime.scriptrunner import get_script_run_ctx  # noqa: PLC0415

        ctx = get_script_run_ctx()
        if ctx is not None and getattr(file, "file_id", None):
            get_instance().uploaded_file_mgr.remove_file(ctx.session_id, file.file_id)
    except (ImportError, RuntimeError, AttributeError):  # AppTest has no runtime: nothing is held
        pass
