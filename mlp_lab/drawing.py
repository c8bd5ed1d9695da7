"""From the canvas to the network: the logic of the Test page, without the canvas component
(``streamlit_drawable_canvas`` cannot be imported outside a running app)."""

from __future__ import annotations

import base64
import binascii

import numpy as np

from mlp_core.images import decode_image
from mlp_core.preprocess import preprocess_digit

CANVAS_SIZE = 280  # pixels on screen: 10x the 28x28 the network sees
STROKE_WIDTH = 22  # thick, like a marker: MNIST strokes are ~2-3 px of 28 after scaling
# The canvas sends its pixels as a PNG data URL (bigger than 280x280 on a high-density
# screen: 2x gives 560x560). Anything a browser could send is far below these caps; a
# hand-made websocket message claiming more is refused before Pillow decodes it.
MAX_CANVAS_SIDE = 4 * CANVAS_SIZE
MAX_DATA_URL_CHARS = 4 * 2**20  # the PNG of a 1120x1120 RGBA canvas is at most ~5 MB raw,
PNG_PREFIX = "data:image/png;base64,"  # a drawing of strokes compresses to a few kB
UNREADABLE = "The drawing could not be read. Press Clear and draw again."
CLEARED = "The drawing could not be read, so the box was cleared. Draw your digit again."
# Under the Test page's answer: what helps when a digit is misread.
MISREAD_HINT = ("Misread? Draw one digit, big (top to bottom of the box) and in the middle, with "
                "lines like a marker's; press **Clear** before the next one. Small digits in a corner, "
                "two digits or stray dots confuse it most.")
_FIT_KEYS = ("naturalWidth", "naturalHeight", "scaleX", "scaleY", "offsetX", "offsetY")


def canvas_state_ok(state) -> bool:
    """Could the canvas component have sent ``state`` (or nothing yet)? The component
    reads it before our parser does (``st_canvas`` calls ``.get`` on its parts and indexes
    ``backgroundFit``), so a page checks it first and gives a state that fails here to no
    canvas: it remounts an empty one (a new key). Never raises."""
    if state is None:
        return True
    try:
        if not isinstance(state, dict):
            return False
        drawing, fit = state.get("drawing"), state.get("backgroundFit")
        if drawing is not None and not (
                isinstance(drawing, dict) and isinstance(drawing.get("raw"), (dict, type(None)))
                and isinstance(drawing.get("data"), (str, type(None)))):
            return False
        return fit is None or (isinstance(fit, dict) and all(
            isinstance(fit.get(k), (int, float)) and not isinstance(fit.get(k), bool) for k in _FIT_KEYS))
    except Exception:  # noqa: BLE001 (a dict subclass with a hostile .get)
        return False


def canvas_pixels(state) -> tuple[np.ndarray | None, str | None]:
    """The canvas component's state, as the browser sent it (``st.session_state[key]``:
    ``{"drawing": {"raw": ..., "data": "data:image/png;base64,..."}}``), -> ``(pixels,
    None)`` with an (H, W, 4) uint8 RGBA array, ``(None, None)`` when nothing is drawn
    yet, or ``(None, message)`` when the message is not a drawing we accept. Never
    raises: the state comes from the network and may be anything."""
    try:
        drawing = state.get("drawing") if isinstance(state, dict) else None
        data = drawing.get("data") if isinstance(drawing, dict) else None
    except Exception:  # noqa: BLE001 (the state comes from the network: a dict subclass with a hostile .get)
        return None, UNREADABLE
    if data is None:
        return None, None
    if not isinstance(data, str) or not data.startswith(PNG_PREFIX):
        return None, UNREADABLE
    if len(data) > MAX_DATA_URL_CHARS:
        return None, "The drawing is too large to read. Press Clear and draw again."
    try:
        png = base64.b64decode(data[len(PNG_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return None, UNREADABLE
    try:  # the side is checked on the PNG's header, before decoding
        return decode_image(png, formats=["PNG"], max_side=MAX_CANVAS_SIDE, rgba=True), None
    except ValueError:
        return None, UNREADABLE


def digit_from_canvas(image_data) -> tuple[np.ndarray | None, str | None]:
    """The canvas's RGBA pixels (H, W, 4) -> ``(image, None)`` with the (28, 28) float32
    image the network receives, or ``(None, message)`` saying why there is none."""
    if image_data is None:
        return None, "Draw a digit in the black box with your finger or the mouse."
    try:
        image = preprocess_digit(np.asarray(image_data))
    except ValueError as exc:
        return None, f"The drawing could not be read ({exc}). Press Clear and draw again."
    if image is None:
        return None, "The canvas is empty: draw a digit in the black box first."
    return image, None


def digit_from_canvas_state(state) -> tuple[np.ndarray | None, str | None]:
    """The canvas component's state -> ``(28x28 image, None)`` or ``(None, message)``:
    what the Test page shows. Never raises."""
    pixels, problem = canvas_pixels(state)
    if problem:
        return None, problem
    try:
        return digit_from_canvas(pixels)
    except Exception:  # noqa: BLE001 (preprocess_digit refuses odd shapes with ValueError; be safe anyway)
        return None, UNREADABLE


def random_batch(n_images: int, n: int = 16, seed: int | None = None) -> np.ndarray:
    """``n`` distinct random indices into the test set."""
    return np.random.default_rng(seed).choice(n_images, size=n, replace=False)
