"""Data augmentation: new training images made from old ones by small random distortions.

A 7 drawn a little tilted, smaller, slanted, wobblier or with a thicker pen is still a 7.
Showing the network such variants of its training images teaches it that, so it reads
digits people draw (which are all of those) better than if it only saw MNIST as it is.

Everything here works on a whole batch at once and in float32, and the randomness comes
from a ``np.random.Generator`` passed in:

* ``rotation``, ``scale``, ``shear`` and ``elastic`` move pixels. They are combined into one
  map "where does each output pixel come from" (an affine part plus an elastic part, Simard,
  Steinkraus & Platt 2003), and every image is resampled once through it, with bilinear
  interpolation (``resample``).
* ``thickness`` changes the pen: each image is blended toward a thicker copy (grey dilation:
  each pixel takes the brightest of itself and its 4 neighbours) or a thinner one (grey
  erosion: the darkest).

With every strength at 0 the images come back unchanged (the identity).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .preprocess import change_thickness

SIDE = 28
CENTRE = 14.0  # MNIST's centre of mass (0-based pixel indices): digits turn around it
ELASTIC_GRID = 4  # the elastic field is drawn on a 4x4 grid of control points and smoothed up


@dataclass(frozen=True)
class Augmentation:
    """How strongly to distort each training image; each is a maximum, and every image
    draws its own amount uniformly between minus and plus it. All 0 (the default): none."""

    rotation: float = 0.0  # degrees: turn the digit by up to this much either way
    scale: float = 0.0  # fraction: make the digit up to this much bigger or smaller (0.2: 80-120 %)
    shear: float = 0.0  # slant: shift each row sideways by up to this many pixels per row
    elastic: float = 0.0  # pixels: bend the strokes like a rubber sheet, moving a pixel up to this far
    thickness: float = 0.0  # 0-1: blend toward a pen one pixel thicker (or thinner) by up to this much
    fraction: float = 1.0  # the share of each batch that is distorted (the rest stays as it is)

    def __post_init__(self):
        limits = {"rotation": 45.0, "scale": 0.5, "shear": 1.0, "elastic": 4.0, "thickness": 1.0, "fraction": 1.0}
        for name, top in limits.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and 0.0 <= value <= top):
                raise ValueError(f"{name} must be a number from 0 to {top:g}, got {value!r}")

    @property
    def active(self) -> bool:
        """True when some images would change."""
        moves = self.rotation or self.scale or self.shear or self.elastic or self.thickness
        return bool(moves) and self.fraction > 0

    def to_dict(self) -> dict:
        return asdict(self)


def augment(images: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """Random distortions of ``images``, a batch of shape (N, 28, 28) or (N, 784) with values
    in [0, 1]: returns a float32 array of the same shape, values in [0, 1]. Which images
    change (``aug.fraction`` of them) and how much is drawn from ``rng``, so the same seed
    gives the same batch. ``augment(x, rng, Augmentation())`` returns ``x`` (as float32)."""
    x = np.asarray(images)
    shape = x.shape
    if x.ndim not in (2, 3) or x.shape[1:] not in ((784,), (SIDE, SIDE)):
        raise ValueError(f"images must have shape (N, 784) or (N, 28, 28), got {x.shape}")
    x = x.reshape(len(x), SIDE, SIDE).astype(np.float32, copy=True)  # (N, 28, 28), our own copy
    if not aug.active or len(x) == 0:
        return x.reshape(shape)
    n_aug = len(x) if aug.fraction >= 1 else int(rng.binomial(len(x), aug.fraction))
    which = rng.choice(len(x), size=n_aug, replace=False) if n_aug < len(x) else slice(None)
    part = x[which]  # (n, 28, 28), the images to distort
    n = len(part)
    if aug.rotation or aug.scale or aug.shear or aug.elastic:
        angle = np.radians(rng.uniform(-aug.rotation, aug.rotation, n))  # (n,)
        size = 1.0 + rng.uniform(-aug.scale, aug.scale, n)  # (n,) how much bigger the digit gets
        slant = rng.uniform(-aug.shear, aug.shear, n)  # (n,)
        field = (rng.uniform(-1.0, 1.0, (n, 2, ELASTIC_GRID * ELASTIC_GRID)) * aug.elastic  # (n, 2, 16)
                 if aug.elastic else None)
        part = resample(part, source_coordinates(angle, size, slant, field))
    if aug.thickness:
        part = change_thickness(part, rng.uniform(-aug.thickness, aug.thickness, n))
    x[which] = part
    return x.reshape(shape)


def distorted_copies(images: np.ndarray, aug: Augmentation, copies: int, seed: int = 0) -> np.ndarray:
    """``copies`` distorted versions of every image, made once ahead of training: (copies, N,
    784) uint8 (0-255, a quarter of float32's memory) from ``images`` (N, 784) or (N, 28, 28),
    uint8 0-255 or floats in [0, 1]. Every image of every copy is distorted (``aug.fraction``
    is for the trainer, which mixes these with the originals); copy k is drawn from
    ``[seed, k]``, in chunks. A trainer given such a pool (``Trainer(distorted=...)``) reads
    its distorted images from it instead of making them every step: a step then costs what
    a plain one does, which the dashboard needs (a class shares one server's cores)."""
    x = np.asarray(images)
    if x.ndim not in (2, 3) or x.shape[1:] not in ((784,), (SIDE, SIDE)):
        raise ValueError(f"images must have shape (N, 784) or (N, 28, 28), got {x.shape}")
    if not (isinstance(copies, int) and copies >= 1):
        raise ValueError(f"copies must be a whole number >= 1, got {copies!r}")
    every = Augmentation(**{**aug.to_dict(), "fraction": 1.0})
    flat = x.reshape(len(x), SIDE * SIDE)
    out = np.empty((copies, len(x), SIDE * SIDE), np.uint8)
    for k in range(copies):
        rng = np.random.default_rng([seed, k])
        for start in range(0, len(x), 512):  # in chunks small enough for the CPU's caches
            part = flat[start:start + 512]
            part = part / np.float32(255.0) if part.dtype == np.uint8 else part.astype(np.float32)
            np.rint(augment(part, rng, every) * 255.0, out=part)
            out[k, start:start + 512] = part
    return out


def source_coordinates(angle, size, slant, field=None) -> np.ndarray:
    """Where each output pixel of each image is read from, (n, 2, 784) float32 (row, column).

    The distortion is the digit turned counter-clockwise (as seen on screen) by ``angle``
    radians, made ``size`` times bigger, slanted by ``slant`` (the top moves right by
    ``slant`` pixels per row above the centre, like italics) -- all around (14, 14) -- and
    then bent by ``field`` (n, 2, 16): row and column displacements in pixels at a 4x4 grid
    of control points, interpolated smoothly over the image (None: no bending). Since we
    resample, each output pixel p reads the input at the *inverse* map: centre +
    A^-1 (p - centre) + bend(p). Each of the arguments is an array of n values."""
    angle, size, slant = (np.asarray(v, dtype=np.float64) for v in (angle, size, slant))
    n = len(angle)
    cos, sin = np.cos(angle), np.sin(angle)
    # The forward map on (row, column) offsets from the centre, A = shear @ rotate @ scale:
    # rotate (counter-clockwise on screen, rows pointing down): row' = cos*row - sin*col,
    # col' = sin*row + cos*col; shear: col'' = col' - slant*row' (rows above the centre,
    # row' < 0, move right). Its inverse, written out:
    inv = np.empty((n, 2, 2))
    inv[:, 0, 0] = cos
    inv[:, 0, 1] = sin
    inv[:, 1, 0] = -sin
    inv[:, 1, 1] = cos
    unshear = np.array([[1.0, 0.0], [1.0, 1.0]])  # col = col'' + slant*row'' (row'' = row')
    unshear = np.broadcast_to(unshear, (n, 2, 2)).copy()
    unshear[:, 1, 0] = slant
    inv = inv @ unshear / size[:, None, None]  # (n, 2, 2): A^-1 = scale^-1 rotate^-1 shear^-1
    # Everything in one matrix product, (2n, 3 or 19) @ (3 or 19, 784): per image and axis,
    # the affine part's two weights, the centre, and the 16 elastic displacements.
    parts = [inv, np.full((n, 2, 1), CENTRE)]
    if field is not None:
        parts.append(np.asarray(field, dtype=np.float64))
    weights = np.concatenate(parts, axis=2).astype(np.float32).reshape(2 * n, -1)
    basis = _BASIS if field is not None else _BASIS[:3]
    return (weights @ basis).reshape(n, 2, SIDE * SIDE)


def resample(images: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """(n, 28, 28) images read at ``coords`` (n, 2, 784) (row, column of the input for each
    output pixel) with bilinear interpolation -> (n, 28, 28) float32. Outside is black (0)."""
    n = len(images)
    side = SIDE + 2
    padded = np.zeros((n, side, side), np.float32)  # a black frame: reads off the edge give 0
    padded[:, 1:-1, 1:-1] = images
    r = np.clip(coords[:, 0] + 1.0, 0.0, side - 1.001)  # (n, 784) in padded pixels
    c = np.clip(coords[:, 1] + 1.0, 0.0, side - 1.001)
    r0, c0 = r.astype(np.intp), c.astype(np.intp)  # (n, 784) top-left neighbour (floor: r >= 0)
    r -= r0  # now the weight of the bottom neighbour
    c -= c0  # ...and of the right one
    base = r0 * side
    base += c0
    base += (np.arange(n, dtype=np.intp) * (side * side))[:, None]  # (n, 784) index in ``flat``
    flat = padded.reshape(-1)
    top_left, top_right = flat.take(base), flat.take(base + 1)  # take: faster than flat[base]
    bottom_left, bottom_right = flat.take(base + side), flat.take(base + side + 1)
    top = top_left + c * (top_right - top_left)
    bottom = bottom_left + c * (bottom_right - bottom_left)
    out = top + r * (bottom - top)
    return np.clip(out, 0.0, 1.0, out=out).reshape(n, SIDE, SIDE)


def examples(image: np.ndarray, aug: Augmentation | None = None) -> dict[str, np.ndarray]:
    """One (28, 28) image shown under each distortion on its own, at a clear strength (for
    the "Why" page): ``{"turned": ..., "bigger": ..., "smaller": ..., "slanted": ...,
    "bent": ..., "thicker": ..., "thinner": ...}``, each (28, 28) float32 in [0, 1]."""
    aug = aug or Augmentation(rotation=15, scale=0.2, shear=0.3, elastic=1.5, thickness=1.0)
    x = np.asarray(image, dtype=np.float32).reshape(1, SIDE, SIDE)
    one = np.ones(1)
    bend = np.random.default_rng(7).uniform(-1, 1, (1, 2, ELASTIC_GRID ** 2)) * max(aug.elastic, 1.5)
    moved = {
        "turned": source_coordinates(np.radians([max(aug.rotation, 10.0)]), one, 0 * one),
        "bigger": source_coordinates(0 * one, one + max(aug.scale, 0.15), 0 * one),
        "smaller": source_coordinates(0 * one, one - max(aug.scale, 0.15), 0 * one),
        "slanted": source_coordinates(0 * one, one, one * max(aug.shear, 0.25)),
        "bent": source_coordinates(0 * one, one, 0 * one, bend),
    }
    out = {name: resample(x, coords)[0] for name, coords in moved.items()}
    out["thicker"] = change_thickness(x, [1.0])[0]
    out["thinner"] = change_thickness(x, [-1.0])[0]
    return out


def _upsample_matrix(grid: int = ELASTIC_GRID) -> np.ndarray:
    """(784, grid*grid): bilinear interpolation of a grid x grid field of control points
    (the corners of the image and evenly between) onto every pixel. A coarse random field
    interpolated like this is smooth, as Simard's Gaussian-filtered noise is, at the cost of
    one small matrix product instead of a convolution per image."""
    pos = np.arange(SIDE) * (grid - 1) / (SIDE - 1)  # (28,) each pixel in grid units
    lo = np.minimum(pos.astype(int), grid - 2)
    frac = pos - lo
    line = np.zeros((SIDE, grid))  # (28, grid) 1-D interpolation weights
    line[np.arange(SIDE), lo] = 1 - frac
    line[np.arange(SIDE), lo + 1] = frac
    return np.einsum("ra,cb->rcab", line, line).reshape(SIDE * SIDE, grid * grid)


_GRID = np.indices((SIDE, SIDE)).reshape(2, -1).astype(np.float64)  # (2, 784) (row, column) of each pixel
_UPSAMPLE = _upsample_matrix()
# (19, 784) float32: what source_coordinates weighs per pixel -- its row and column offset
# from the centre, a 1 (for the centre itself), and the 16 elastic control points' shares.
_BASIS = np.vstack([_GRID - CENTRE, np.ones((1, SIDE * SIDE)), _UPSAMPLE.T]).astype(np.float32)


# --- the 1 with a flag -----------------------------------------------------------------------
# Much of the world writes a 1 with a flag at the top (a short stroke down to the left), often
# with a foot; MNIST's American writers seldom did, and a network trained on MNIST alone reads
# such a 1 as a 7 (the canvas set's commonest mistake) or a 4. ``flag_ones`` gives a share of
# the training set's 1s one, drawn with the digit's own pen. Made once per training set, with
# its own seed (the same images every run): it changes the data, not each step's batch.
FLAG_LENGTH = (0.2, 0.42)  # of the digit's height
FLAG_TURN = (35.0, 65.0)  # degrees between the stem (downward) and the flag (down to the left)
FOOT_SHARE = 0.3  # of the flagged 1s that also get a foot (a bar under the stem)
FOOT_HALF = (0.15, 0.3)  # of the digit's height, either side of the stem's bottom
FLAG_SEED = 1000


def flag_ones(images: np.ndarray, labels: np.ndarray, fraction: float, seed: int = FLAG_SEED) -> np.ndarray:
    """A copy of ``images`` ((N, 28, 28) or (N, 784), uint8 or floats in [0, 1], white ink
    on black) in which a share ``fraction`` of the 1s (``labels == 1``, picked at random
    from ``seed``) has a flag at the top and some also a foot (``with_flag``). The other
    images are copied as they are; the dtype and shape are kept."""
    x = np.asarray(images)
    pick, flagged = flagged_ones(x, labels, fraction, seed)
    out = x.copy()
    out[pick] = flagged
    return out


def flagged_ones(images: np.ndarray, labels: np.ndarray, fraction: float,
                 seed: int = FLAG_SEED) -> tuple[np.ndarray, np.ndarray]:
    """What ``flag_ones`` changes, without copying the rest: the indices of the 1s it picks
    (ascending) and their flagged images (the dtype and shape of ``images``' rows). For a
    caller that goes through a large set a chunk at a time (``mlp_lab.shared_data``)."""
    x = np.asarray(images)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be from 0 to 1, got {fraction!r}")
    rng = np.random.default_rng(seed)
    ones = np.flatnonzero(np.asarray(labels) == 1)
    pick = ones[rng.random(len(ones)) < fraction]
    if not len(pick):
        return pick, x[pick]
    flagged = with_flag(_float_images(x[pick]).reshape(-1, SIDE, SIDE), rng)  # (k, 28, 28)
    flagged = np.rint(flagged * 255.0).astype(np.uint8) if x.dtype == np.uint8 else flagged.astype(x.dtype)
    return pick, flagged.reshape(x[pick].shape)


def with_flag(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 28, 28) images of 1s, floats in [0, 1] -> float32 copies with a flag from the top
    of the stem down to the left (its length a share ``FLAG_LENGTH`` of the digit's height,
    turned ``FLAG_TURN`` degrees from the stem, so a slanted 1 gets a slanted flag) and, for
    a share ``FOOT_SHARE``, a foot. Each is an anti-aliased line as wide as the digit's own
    stroke (its ink over its height)."""
    x = np.asarray(images, dtype=np.float32)
    n = len(x)
    rows = (x > 0.3).any(axis=2)  # (n, 28) rows with ink
    top = rows.argmax(axis=1).astype(np.float32)  # (n,)
    bottom = (SIDE - 1 - rows[:, ::-1].argmax(axis=1)).astype(np.float32)
    height = bottom - top + 1
    every = np.arange(n)
    top_x, bottom_x = _ink_column(x[every, top.astype(int)]), _ink_column(x[every, bottom.astype(int)])
    width = np.clip(x.sum(axis=(1, 2)) / height, 1.5, 4.0)  # (n,) the pen: a 1 is mostly its stem
    length = rng.uniform(*FLAG_LENGTH, n) * height
    stem = np.arctan2(bottom_x - top_x, height)  # 0: upright; > 0: its foot to the right
    turn = stem - np.deg2rad(rng.uniform(*FLAG_TURN, n))
    start_y = top + width / 4
    out = np.maximum(x, _line(start_y, top_x, start_y + length * np.cos(turn), top_x + length * np.sin(turn), width))
    foot = rng.random(n) < FOOT_SHARE
    half = rng.uniform(*FOOT_HALF, n) * height
    foot_y = bottom - width / 4
    out[foot] = np.maximum(out[foot], _line(foot_y, bottom_x - half, foot_y, bottom_x + half, width)[foot])
    return out


def _ink_column(rows: np.ndarray) -> np.ndarray:
    """(n, 28) rows of pixels -> (n,) the column of their ink's centre."""
    weights = rows + 1e-6
    return (weights * np.arange(SIDE, dtype=np.float32)).sum(axis=1) / weights.sum(axis=1)


def _line(y0, x0, y1, x1, width) -> np.ndarray:
    """(n,) ends and widths -> (n, 28, 28) float32: each image a straight line from (y0, x0)
    to (y1, x1) with round ends, ``width`` pixels wide, its edge anti-aliased over a pixel."""
    y0, x0, y1, x1, width = (np.asarray(v, dtype=np.float32)[:, None, None] for v in (y0, x0, y1, x1, width))
    rows, cols = np.indices((SIDE, SIDE), dtype=np.float32)
    dy, dx = y1 - y0, x1 - x0
    py, px = rows - y0, cols - x0
    along = np.clip((py * dy + px * dx) / np.maximum(dy * dy + dx * dx, 1e-6), 0.0, 1.0)  # nearest point
    distance = np.hypot(py - along * dy, px - along * dx)
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)


def _float_images(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
