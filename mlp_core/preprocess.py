"""Turn a drawing or a photo of a digit into the 28x28 image the network expects.

MNIST was built from binary NIST digits in two steps (LeCun et al.):

1. each digit was size-normalised to fit a 20x20 box *preserving its aspect ratio*,
   with anti-aliasing, which is where MNIST's grey edge pixels come from;
2. the 20x20 result was placed in a 28x28 field so that its centre of mass sits
   at the centre of the field.

``preprocess_digit`` repeats those steps, after first finding the ink: it reads any
grayscale / RGB / RGBA array, works out which value is background and which is ink,
and makes the ink white (1.0) on black (0.0) like MNIST.

Centring convention, checked on the real data (``sum(i * p) / sum(p)`` with 0-based
row/column indices): MNIST's centres of mass average (14.0, 14.0) and are spread
uniformly over [13.5, 14.5] on each axis (std 0.29), i.e. MNIST shifted by a
*whole* number of pixels. We do the same: the shift that brings the centre of mass
to (14, 14) is rounded to whole pixels, which keeps strokes as sharp as MNIST's
(a sub-pixel shift would blur every symmetric digit by half a pixel, because a
20-px box has its centre at 9.5). The shift is clipped so the digit never leaves
the image.
"""

from __future__ import annotations

import numpy as np

SIDE = 28  # MNIST image side
BOX = 20  # MNIST digits are scaled so their longest side is 20 px
CENTRE = 14.0  # MNIST centre of mass, 0-based pixel indices
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's convert("L")
LANCZOS_LOBES = 3  # of the kernel that enlarges a small picture (Pillow's LANCZOS has 3)
STROKE_WIDTH = 2.4  # px: a little above MNIST's median stroke width (2.0; tried 2.4 on UCI digits)
_CHUNK = 2000  # images prepared at a time
_PIXEL_POSITIONS = np.indices((SIDE, SIDE), dtype=np.float32).reshape(2, -1)  # (2, 784) row, column


def preprocess_digit(image, *, ink_threshold: float = 0.1, deskew: bool = False,
                     strokes: bool = False) -> np.ndarray | None:
    """Turn any drawing or photo of a digit into the 28x28 float32 image (values in
    [0, 1], white ink on black, like MNIST) the network expects, the way MNIST itself
    was made. Returns None when the image holds no ink.

    ``image``: (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA array (or anything
    ``np.asarray`` turns into one, e.g. a Pillow image), integer 0-255 or float 0-1,
    any size. Either polarity works: the background is the value that dominates the
    image border. ``ink_threshold`` (fraction of full scale): a pixel is ink when it
    differs from the background by more than this; fainter pixels count as noise and
    are set to 0 (so MNIST's own faintest edge pixels, < 26/255, are dropped too).
    ``deskew``: also straighten the digit (``deskew_images``); ``strokes``: also even out
    its pen (``normalise_strokes``), as a model trained on images so prepared needs (such a
    model does both itself in ``Network.prepare``: leave these False to feed it).
    """
    gray = _to_gray(image)  # (H, W) float64 in [0, 1]
    ink = _ink_on_black(gray, ink_threshold)  # (H, W), ink > 0, background 0
    if ink is None:
        return None
    digit = _crop_to_ink(ink, ink_threshold)  # (h, w), tight around the ink
    h, w = digit.shape
    scale = BOX / max(h, w)  # longest side -> 20 px, aspect ratio kept
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    digit = _resize_area(digit, out_h, out_w)  # (out_h, out_w), max(out_h, out_w) == 20
    top, left = _center_of_mass_shift(digit)
    out = np.zeros((SIDE, SIDE))
    out[top : top + out_h, left : left + out_w] = digit  # (28, 28)
    out /= out.max()  # strongest ink -> 1.0, as MNIST's 255
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    out = deskew_images(out[None])[0] if deskew else out
    return normalise_strokes(out[None])[0] if strokes else out


def deskew_images(images: np.ndarray) -> np.ndarray:
    """Straighten slanted digits: (N, 28, 28) or (N, 784) images in [0, 1] -> float32 of the
    same shape, each sheared sideways so that its main axis stands upright.

    A digit's slant is measured from its ink's second moments (as the statistics of the
    pixels' positions weighted by brightness): ``slope = cov(row, column) / var(row)`` is
    how far the ink moves right per row down. Shearing each row back by ``slope * (row -
    centre row)`` makes that covariance zero and keeps the centre of mass where it was.
    Training and test images and drawings all go through this, so a 1 written upright and
    one written in italics look alike to the network. The slope is capped at 1 (45
    degrees); an image without ink, or a flat one (a dash: no height to measure a slant
    over), is left as it is. Known to cut a plain MLP's error on MNIST by a lot (e.g.
    LeCun et al. 1998 report deskewing for their k-NN and SVM results)."""
    x = np.asarray(images)
    shape = x.shape
    if x.ndim not in (2, 3) or x.shape[1:] not in ((784,), (SIDE, SIDE)):
        raise ValueError(f"images must have shape (N, 784) or (N, 28, 28), got {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"images must be floats in [0, 1] (use mlp_core.scale), got dtype {x.dtype}")
    x = x.reshape(len(x), SIDE * SIDE)
    out = np.empty(x.shape, np.float32)  # (N, 784)
    for start in range(0, len(x), _CHUNK):  # in chunks: the temporaries stay in the cache
        out[start:start + _CHUNK] = _deskew_rows(x[start:start + _CHUNK].astype(np.float32, copy=False))
    return out.reshape(shape)


def normalise_strokes(images: np.ndarray, width: float = STROKE_WIDTH) -> np.ndarray:
    """Even out the pen: (N, 28, 28) or (N, 784) images in [0, 1] -> float32 of the same
    shape, with sharp edges and strokes about ``width`` pixels wide.

    Two steps. (1) Contrast: values below 0.2 become 0, above 0.7 become 1, linearly in
    between, so a blurry digit (a small or low-resolution picture enlarged) gets MNIST's
    crisp edges. (2) Width: a stroke's width is about ``2 * ink / outline`` (for a band of
    width w and length L, ink = w L and outline = 2 L; the outline is the sum of the
    brightness steps between neighbouring pixels). A digit whose strokes are more than
    0.3 px off ``width`` is blended toward its grey erosion (thinner) or dilation (thicker)
    by the share that closes the gap (one full step changes the width by about 2 px), twice,
    and its brightest pixel set back to 1. A very bold drawing (a small digit drawn with a
    thick pen) or a thin one then looks like MNIST's median digit to the network. Applied
    alike to training images, test images and drawings by a model with ``strokes=True``."""
    x = np.asarray(images)
    shape = x.shape
    if x.ndim not in (2, 3) or x.shape[1:] not in ((784,), (SIDE, SIDE)):
        raise ValueError(f"images must have shape (N, 784) or (N, 28, 28), got {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"images must be floats in [0, 1] (use mlp_core.scale), got dtype {x.dtype}")
    x = x.reshape(len(x), SIDE, SIDE)
    out = np.empty(x.shape, np.float32)  # (N, 28, 28)
    for start in range(0, len(x), _CHUNK):
        part = np.clip((x[start:start + _CHUNK].astype(np.float32) - 0.2) / 0.5, 0.0, 1.0)  # (n, 28, 28)
        for _ in range(2):
            gap = width - stroke_width(part)  # (n,) + : too thin, - : too bold
            amount = np.where(np.abs(gap) < 0.3, 0.0, np.clip(gap / 2.0, -1.0, 1.0))
            part = change_thickness(part, amount)
            top = part.reshape(len(part), -1).max(axis=1)  # (n,)
            part /= np.where(top > 0, top, 1.0)[:, None, None]
        out[start:start + _CHUNK] = part
    return out.reshape(shape)


def stroke_width(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) images -> (n,) the width of their strokes in pixels, ``2 * ink / outline``
    (see ``normalise_strokes``); 0 for an image without ink."""
    x = np.asarray(images, dtype=np.float32)
    outline = np.abs(np.diff(x, axis=1)).sum(axis=(1, 2)) + np.abs(np.diff(x, axis=2)).sum(axis=(1, 2))
    return 2.0 * x.sum(axis=(1, 2)) / np.where(outline > 0, outline, np.inf)


def change_thickness(images: np.ndarray, amount) -> np.ndarray:
    """(n, 28, 28) images in [0, 1] with their strokes made thicker (``amount`` > 0) or
    thinner (< 0): each image is blended by |amount| (0-1) toward its grey dilation (each
    pixel the brightest of itself and its 4 neighbours: strokes grow by a pixel on each side)
    or its grey erosion (the darkest: strokes shrink). Returns float32 (n, 28, 28)."""
    x = np.asarray(images, dtype=np.float32)
    amount = np.asarray(amount, dtype=np.float32)[:, None, None]  # (n, 1, 1)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))  # (n, 30, 30), black around
    up, down, left, right = padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]
    thicker = np.maximum(np.maximum(x, up), np.maximum(np.maximum(down, left), right))
    thinner = np.minimum(np.minimum(x, up), np.minimum(np.minimum(down, left), right))
    target = np.where(amount > 0, thicker, thinner)  # (n, 28, 28)
    return x + np.abs(amount) * (target - x)


def _deskew_rows(x: np.ndarray) -> np.ndarray:
    """``deskew_images`` of (n, 784) float32 -> (n, 784) float32."""
    rows, cols = _PIXEL_POSITIONS  # (784,) each
    mass = x.sum(axis=1)  # (N,)
    safe = np.where(mass > 0, mass, 1.0)
    cy = x @ rows / safe  # (N,) centre of mass, row
    cx = x @ cols / safe  # (N,) centre of mass, column
    var_row = x @ (rows * rows) / safe - cy * cy  # (N,)
    cov = x @ (rows * cols) / safe - cy * cx  # (N,)
    upright = (mass <= 0) | (var_row < 0.5)
    slope = np.clip(np.where(upright, 0.0, cov / np.where(upright, 1.0, var_row)), -1.0, 1.0)  # (N,)
    # A shear moves whole rows: row r of the output is row r of the input read from
    # ``slope * (r - cy)`` columns further right, linear interpolation between two columns.
    shift = slope[:, None] * (np.arange(SIDE, dtype=np.float32) - cy[:, None])  # (N, 28) per row
    whole = np.floor(shift)
    frac = (shift - whole)[:, :, None]  # (N, 28, 1) weight of the right-hand column
    pad = SIDE + 1  # |shift| <= 28: reads beyond the image land in the black margin
    padded = np.zeros((len(x), SIDE, SIDE + 2 * pad), np.float32)  # (N, 28, 86)
    padded[:, :, pad:pad + SIDE] = x.reshape(-1, SIDE, SIDE)
    first = (whole.astype(np.int64) + pad)[:, :, None] + np.arange(SIDE)  # (N, 28, 28) column read
    left = np.take_along_axis(padded, first, axis=2)
    right = np.take_along_axis(padded, first + 1, axis=2)
    out = left + frac * (right - left)  # (N, 28, 28)
    return np.clip(out, 0.0, 1.0, out=out).reshape(len(x), SIDE * SIDE)


def _to_gray(image) -> np.ndarray:
    """Validate ``image`` and return its luminance, (H, W) float64 in [0, 1].

    Integers are read as 0-255 (uint16 as 0-65535); floats as 0-1 (or as 0-255 if
    any value exceeds 1). RGBA is composited over a background that contrasts with
    the strokes: a canvas with a transparent background stores its strokes in the
    opaque pixels, so white strokes go over black and dark strokes over white.
    With alpha 255 everywhere (an opaque canvas) alpha changes nothing.
    """
    expected = "a 2-D grayscale (H, W), RGB (H, W, 3) or RGBA (H, W, 4) image array"
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"expected {expected} of numbers (uint8 0-255 or float 0-1); "
                         f"received dtype {arr.dtype} with shape {arr.shape}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"expected {expected}; received an array of shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected {expected} with at least one pixel; "
                         f"received an empty array of shape {arr.shape}")
    x = arr.astype(np.float64)  # one working copy, scaled and clipped in place
    if np.issubdtype(arr.dtype, np.integer):
        x *= 1.0 / (65535.0 if arr.dtype == np.uint16 else 255.0)
    elif not np.isfinite(x).all():
        raise ValueError(f"expected {expected} of finite numbers; received NaN or inf")
    elif x.max() > 1.0:
        x *= 1.0 / 255.0
    np.clip(x, 0.0, 1.0, out=x)
    if x.ndim == 2:
        return x
    luma = x[..., :3] @ _LUMA  # (H, W)
    if x.shape[2] == 3:
        return luma
    alpha = x[..., 3]  # (H, W)
    stroke = (luma * alpha).sum() / alpha.sum() if alpha.sum() > 0 else 1.0
    background = 0.0 if stroke >= 0.5 else 1.0  # contrast with the strokes' colour
    return alpha * luma + (1.0 - alpha) * background  # "over" compositing


def _ink_on_black(gray: np.ndarray, threshold: float) -> np.ndarray | None:
    """(H, W) luminance -> (H, W) ink map: background 0, ink > 0 (white on black).

    The background level is the median of the border pixels (the value that dominates
    the edge of the picture; it need not be pure black or white). The ink is whatever
    departs from it by more than ``threshold``; its polarity (light on dark or dark on
    light) is the side with more such departure. Returns None when there is no ink.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    dev = gray - np.median(border)  # (H, W), signed distance from background
    brighter = dev[dev > threshold].sum()
    darker = -dev[dev < -threshold].sum()
    if brighter == 0 and darker == 0:
        return None  # blank, uniform or only faint noise
    ink = dev if brighter >= darker else -dev
    return np.where(ink > threshold, ink, 0.0)  # faint departures are noise, not ink


def _crop_to_ink(ink: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) -> (h, w): the bounding box of the pixels whose ink exceeds ``threshold``."""
    rows = np.flatnonzero((ink > threshold).any(axis=1))
    cols = np.flatnonzero((ink > threshold).any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights mapping a line of ``n_in`` pixels onto ``n_out`` pixels.

    Shrinking (the usual case) is area averaging (a box filter), the standard form of
    the anti-aliasing MNIST describes (its exact filter is not published): output pixel i
    covers the input interval [i * f, (i + 1) * f) with f = n_in / n_out and
    averages the input pixels by how much of each it covers (fractional coverage at the
    ends). Enlarging (a tiny drawing, a low-resolution scan such as the UCI digits' 8x8)
    uses Lanczos interpolation (a windowed sinc, ``LANCZOS_LOBES`` lobes, normalised over the
    pixels inside the image), as Pillow and most image tools enlarge: its edges stay sharp
    where linear interpolation would blur them together (two strokes a pixel apart keep a dark
    gap between them: the sides of a 4, the loop of a 9; on the UCI digits, a
    2,000-step model read 94.8 % instead of 93.1 %). Its small negative lobes are clipped by
    the caller (``_resize_area``).
    """
    f = n_in / n_out
    if n_out <= n_in:
        lo = np.arange(n_out)[:, None] * f  # (n_out, 1) start of each output interval
        j = np.arange(n_in)[None, :]  # (1, n_in) input pixel j spans [j, j + 1)
        overlap = np.minimum(lo + f, j + 1) - np.maximum(lo, j)  # (n_out, n_in)
        return np.clip(overlap, 0.0, None) / f
    centre = (np.arange(n_out) + 0.5) * f - 0.5  # (n_out,) each output pixel in input px
    distance = centre[:, None] - np.arange(n_in)[None, :]  # (n_out, n_in)
    weights = np.sinc(distance) * np.sinc(distance / LANCZOS_LOBES) * (np.abs(distance) < LANCZOS_LOBES)
    return weights / weights.sum(axis=1, keepdims=True)


def _resize_area(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(h, w) -> (out_h, out_w) with separable resampling ``A @ img @ B.T``: area
    averaging along an axis that shrinks, Lanczos interpolation along one that grows
    (its overshoot below 0 clipped)."""
    a = _resample_matrix(img.shape[0], out_h)  # (out_h, h)
    b = _resample_matrix(img.shape[1], out_w)  # (out_w, w)
    return np.clip(a @ img @ b.T, 0.0, None)


def _center_of_mass_shift(digit: np.ndarray) -> tuple[int, int]:
    """Top-left corner at which to paste ``digit`` (h, w) into the 28x28 field so that
    its centre of mass lands on (14, 14), rounded to whole pixels as MNIST evidently did
    (so the result's centre of mass is within 0.5 px of 14 on each axis), and clipped so
    that the whole digit stays inside the field."""
    h, w = digit.shape
    mass = digit.sum()
    cy = (digit.sum(axis=1) @ np.arange(h)) / mass  # centre of mass, row
    cx = (digit.sum(axis=0) @ np.arange(w)) / mass  # centre of mass, column
    top = int(np.clip(np.floor(CENTRE - cy + 0.5), 0, SIDE - h))
    left = int(np.clip(np.floor(CENTRE - cx + 0.5), 0, SIDE - w))
    return top, left
