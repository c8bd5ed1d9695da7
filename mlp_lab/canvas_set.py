"""Our own test set of canvas drawings, replayed through the Test page's exact path.

``canvas_set/digits.zip`` holds digits drawn with the mouse on the Test page's real
canvas in Chromium (``canvas_set/make_set.py``; see ``canvas_set/README.md``): each file
``NNNN_label.png`` is the PNG the canvas sent to Python, byte for byte, and
``labels.csv`` gives ``file,label,style``.

``replay(model)`` gives each PNG to the page's own reader as the component's state
(``{"drawing": {"raw": ..., "data": "data:image/png;base64,..."}}`` ->
``mlp_lab.drawing.digit_from_canvas_state``, the 28 x 28 image the page shows under
"What the network sees") and asks the model, as the page does, for its answer. Pure
logic: no Streamlit, no browser.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mlp_core.metrics import confusion_matrix
from mlp_lab.drawing import PNG_PREFIX, canvas_pixels, digit_from_canvas_state

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "canvas_set" / "digits.zip"
_NAME = re.compile(r"^(\d{4})_(\d)\.png$")
MAX_MEMBER_BYTES = 2**20  # a canvas PNG is a few kB


@dataclass(frozen=True)
class CanvasSet:
    files: list[str]  # NNNN_label.png, in order
    pngs: list[bytes]  # each the PNG the canvas sent
    labels: np.ndarray  # (N,) int64, the digit drawn
    styles: list[str]  # how it was drawn (labels.csv's style column)

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class ReplayResult:
    n: int
    accuracy: float  # share right of all n (a drawing the page cannot read counts as wrong)
    per_digit: np.ndarray  # (10,) share right of each true digit
    confusion: np.ndarray  # (10, 10) rows: true digit, columns: the model's answer
    predicted: np.ndarray  # (N,) the answers, -1 where the page read no digit
    unreadable: int  # drawings the page could not read (not in the confusion matrix)


def load_canvas_set(path: str | Path = DEFAULT_PATH) -> CanvasSet:
    """Read the zip: ``labels.csv`` and every PNG it names. Raises ValueError when a
    name, a label or a file is missing or does not match."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "labels.csv" not in names:
            raise ValueError(f"{path}: no labels.csv")
        rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode("utf-8"))))
        files, pngs, labels, styles = [], [], [], []
        for row in rows:
            name, label = row.get("file", ""), row.get("label", "")
            match = _NAME.match(name)
            if not match or match.group(2) != label or name not in names:
                raise ValueError(f"{path}: bad row {row!r}")
            if archive.getinfo(name).file_size > MAX_MEMBER_BYTES:
                raise ValueError(f"{path}: {name} is too large for a canvas PNG")
            files.append(name)
            pngs.append(archive.read(name))
            labels.append(int(label))
            styles.append(row.get("style", ""))
    return CanvasSet(files, pngs, np.asarray(labels, dtype=np.int64), styles)


def canvas_state(png: bytes) -> dict:
    """The component's state as the browser sends it, for a PNG it produced."""
    return {"drawing": {"raw": None, "data": PNG_PREFIX + base64.b64encode(png).decode("ascii")}}


def pixels(png: bytes) -> np.ndarray:
    """The (H, W, 4) RGBA pixels the Test page decodes from this PNG (``canvas_pixels``)."""
    array, problem = canvas_pixels(canvas_state(png))
    if array is None:
        raise ValueError(problem or "no drawing")
    return array


def small_png(png: bytes) -> bytes:
    """The same picture in fewer bytes: Chromium's canvas PNG is RGBA at zlib's fastest
    level (~10 kB), but a drawing in white on the black canvas is grey and opaque, so a
    one-channel PNG at the best compression holds every pixel (~3 kB). Returns ``png``
    itself unless the page decodes the smaller one to exactly the same RGBA pixels."""
    rgba = pixels(png)
    if not ((rgba[..., 3] == 255).all() and (rgba[..., 0] == rgba[..., 1]).all()
            and (rgba[..., 1] == rgba[..., 2]).all()):
        return png
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[..., 0]), mode="L").save(out, "PNG", optimize=True)
    smaller = out.getvalue()
    return smaller if len(smaller) < len(png) and np.array_equal(pixels(smaller), rgba) else png


def images(pngs) -> tuple[np.ndarray, np.ndarray]:
    """PNGs -> ``(images, readable)``: (N, 28, 28) float32, each what the Test page
    gives the network (zeros where it reads none), and a (N,) bool mask of the readable."""
    out = np.zeros((len(pngs), 28, 28), dtype=np.float32)
    readable = np.zeros(len(pngs), dtype=bool)
    for i, png in enumerate(pngs):
        image, _ = digit_from_canvas_state(canvas_state(png))
        if image is not None:
            out[i], readable[i] = image, True
    return out, readable


def replay(model, canvas_set: CanvasSet | None = None, path: str | Path = DEFAULT_PATH) -> ReplayResult:
    """Each drawing of the set through the Test page's path and ``model`` (anything with
    the page's ``predict_proba``: an ``mlp_core`` network or a ``LabSession``): the answer
    is the most probable digit, as the page's Prediction."""
    canvas_set = load_canvas_set(path) if canvas_set is None else canvas_set
    x, readable = images(canvas_set.pngs)
    labels = canvas_set.labels
    predicted = np.full(len(labels), -1, dtype=np.int64)
    if readable.any():
        predicted[readable] = np.asarray(model.predict_proba(x[readable])).argmax(axis=1)
    right = predicted == labels
    per_digit = np.array([right[labels == d].mean() if (labels == d).any() else np.nan for d in range(10)])
    return ReplayResult(n=len(labels), accuracy=float(right.mean()) if len(labels) else float("nan"),
                        per_digit=per_digit,
                        confusion=confusion_matrix(labels[readable], predicted[readable]),
                        predicted=predicted, unreadable=int((~readable).sum()))
