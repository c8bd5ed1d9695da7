"""From the canvas to the network: the logic of the Test page, without the canvas component
(``streamlit_drawable_canvas`` cannot be imported outside a running app)."""

from __future__ import annotations

import numpy as np

from mlp_core.preprocess import preprocess_digit

CANVAS_SIZE = 280  # pixels on screen: 10x the 28x28 the network sees
STROKE_WIDTH = 22  # thick, like a marker: MNIST strokes are ~2-3 px of 28 after scaling


def digit_from_canvas(image_data) -> tuple[np.ndarray | None, str | None]:
    """The canvas's RGBA pixels (H, W, 4) -> ``(image, None)`` with the (28, 28) float32
    image the network receives, or ``(None, message)`` saying why there is none."""
    if image_data is None:
        return None, "Draw a digit in the black box with your mouse (or finger)."
    try:
        image = preprocess_digit(np.asarray(image_data))
    except ValueError as exc:
        return None, f"The drawing could not be read ({exc}). Press Clear and draw again."
    if image is None:
        return None, "The canvas is empty: draw a digit in the black box first."
    return image, None


def random_batch(n_images: int, n: int = 16, seed: int | None = None) -> np.ndarray:
    """``n`` distinct random indices into the test set."""
    return np.random.default_rng(seed).choice(n_images, size=n, replace=False)
