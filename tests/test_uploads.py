"""Bounds on uploaded files held in memory (mlp_lab/uploads.py), on Streamlit's real
MemoryUploadedFileManager, and the canvas's stroke objects dropped from widget state."""

from __future__ import annotations

import json

import pytest
from starlette.exceptions import HTTPException
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.state import common
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

import mlp_lab.session  # noqa: F401 (installs the bounds, as the app does on start)
from mlp_lab import config

MB = 2**20


def _file(file_id: str, size: int) -> UploadedFileRec:
    return UploadedFileRec(file_id=file_id, name=f"{file_id}.npz", type="application/octet-stream",
                           data=b"\0" * size)


@pytest.fixture
def manager(monkeypatch):
    monkeypatch.setattr(config, "UPLOAD_BURST", 50)
    monkeypatch.setattr(config, "UPLOADS_KEPT_PER_SESSION", 2)
    return MemoryUploadedFileManager("/_stcore/upload_file")


def test_a_session_keeps_only_its_newest_files(manager):
    for i in range(6):
        manager.add_file("s1", _file(f"f{i}", MB))
    assert list(manager.file_storage["s1"]) == ["f4", "f5"]
    manager.add_file("s2", _file("g0", MB))  # another session's files are its own
    assert list(manager.file_storage["s1"]) == ["f4", "f5"] and list(manager.file_storage["s2"]) == ["g0"]


def test_uploading_too_often_is_refused_with_429(monkeypatch):
    monkeypatch.setattr(config, "UPLOAD_BURST", 3)
    monkeypatch.setattr(config, "UPLOAD_RATE", 0.001)
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    for i in range(3):
        manager.add_file("burst", _file(f"f{i}", 10))
    with pytest.raises(HTTPException) as refused:
        manager.add_file("burst", _file("f3", 10))
    assert refused.value.status_code == 429 and "Too many uploads" in refused.value.detail
    manager.add_file("other", _file("g", 10))  # other sessions still may
    manager.remove_session_files("burst")  # the session ends: its allowance goes with it
    manager.add_file("burst", _file("again", 10))


def test_the_server_holds_at_most_its_total(manager, monkeypatch):
    monkeypatch.setattr(config, "UPLOADS_TOTAL_BYTES", 5 * MB)
    for session in ("a", "b"):
        manager.add_file(session, _file("x", 2 * MB))
    with pytest.raises(HTTPException) as refused:
        manager.add_file("c", _file("x", 2 * MB))
    assert refused.value.status_code == 503
    manager.add_file("a", _file("y", 1 * MB))  # 5 MB held: fits
    # replacing a session's oldest file frees its bytes first, so this fits too
    monkeypatch.setattr(config, "UPLOADS_KEPT_PER_SESSION", 1)
    manager.add_file("b", _file("z", 2 * MB))
    assert list(manager.file_storage["b"]) == ["z"]
    assert sum(len(f.data) for files in manager.file_storage.values() for f in files.values()) <= 5 * MB


def test_the_canvas_state_loses_its_stroke_objects_and_keeps_its_picture():
    value = {"drawing": {"raw": {"objects": [{"type": "Path", "path": [["L", 1, 2]] * 1000}]},
                         "data": "data:image/png;base64,AAAA"}, "backgroundFit": None}
    state = WidgetState(id="canvas", json_value=json.dumps(value))
    unpacked = common.unpack_widget_state_value(state)
    assert unpacked["drawing"] == {"raw": None, "data": "data:image/png;base64,AAAA"}
    assert "backgroundFit" in unpacked
    other = WidgetState(id="other", json_value=json.dumps({"raw": [1, 2], "x": 1}))
    assert common.unpack_widget_state_value(other) == {"raw": [1, 2], "x": 1}  # not a drawing: as sent
