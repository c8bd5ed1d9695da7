"""Reading image files (PNG, JPEG, ...) into arrays, and digits out of them. The one place
that decodes images: the dashboard's canvas parser (mlp_lab.drawing) calls ``decode_image``.

Pillow is imported lazily, inside the functions, so ``mlp_core`` itself stays pure NumPy.
Every problem with a file's content is a ``ValueError`` with a message for the user; a
missing file is a ``FileNotFoundError``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from .preprocess import preprocess_digit

MAX_PIXELS = 40_000_000  # refuse bigger pictures before decoding them (decompression bombs)


def read_image(path) -> np.ndarray:
    """Read an image file as a uint8 array, as ``decode_image`` does. Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` for a directory or an empty
    file, and for everything ``decode_image`` refuses."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ValueError("the file is empty, not an image")
    with open(path, "rb") as file:
        return decode_image(file)


def decode_image(data: bytes | BinaryIO, formats: Sequence[str] | None = None,
                 max_side: int | None = None, rgba: bool = False) -> np.ndarray:
    """Decode an image file's bytes (or a binary file) as a uint8 array: (H, W) grayscale,
    (H, W, 3) RGB or (H, W, 4) RGBA; always RGBA with ``rgba=True``.

    Palette, CMYK, 16-bit and other modes are converted to one of those; the first frame
    of an animation is used. ``formats``: the Pillow formats accepted (e.g. ``["PNG"]``),
    any by default. The size is checked on the header, before any pixel is decoded: at
    most ``MAX_PIXELS`` pixels and, if given, ``max_side`` on either side. Any problem
    (not an image, truncated or damaged, no pixels, too large) is a ``ValueError`` with a
    message for the user, and nothing else is raised.
    """
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 (lazy: only needed for image files)

    if isinstance(data, (bytes, bytearray, memoryview)):
        source = io.BytesIO(data)
    elif hasattr(data, "read"):
        source = data
    else:  # a str would be taken for a file name
        raise ValueError(f"data must be bytes or a binary file, got {type(data).__name__}")
    too_large = f"the image is too large (more than {MAX_PIXELS:,} pixels)"
    with warnings.catch_warnings():
        # Pillow warns (then errors) on huge images; we want a clear refusal instead.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(source, formats=formats)
        except UnidentifiedImageError as exc:
            expected = ", ".join(formats) if formats else "PNG, JPEG, ..."
            raise ValueError(f"not an image file Pillow can read (expected {expected})") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(too_large) from exc
        except Exception as exc:  # damaged headers make Pillow raise many kinds of errors
            raise ValueError(f"the image file is damaged ({exc})") from exc
        with img:
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ValueError(f"the image has no pixels ({width}x{height})")
            if width * height > MAX_PIXELS:
                raise ValueError(f"the image is too large: {width}x{height} pixels, "
                                 f"at most {MAX_PIXELS:,} are accepted")
            if max_side is not None and max(width, height) > max_side:
                raise ValueError(f"the image is too large: {width}x{height} pixels, "
                                 f"at most {max_side} on a side are accepted")
            try:
                img.load()
                return np.asarray(img.convert("RGBA"), dtype=np.uint8) if rgba else _to_array(img)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ValueError(too_large) from exc
            except MemoryError as exc:
                raise ValueError("the image needs more memory than is available") from exc
            except Exception as exc:  # OSError "truncated", SyntaxError, struct.error, ...
                raise ValueError(f"the image file is truncated or damaged ({exc})") from exc


def _to_array(img) -> np.ndarray:
    """A loaded Pillow image -> uint8 array (H, W), (H, W, 3) or (H, W, 4)."""
    mode = img.mode
    if mode in ("L", "RGB", "RGBA"):
        return np.asarray(img, dtype=np.uint8)
    if mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        return np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)
    if mode in ("LA", "La", "RGBa"):
        return np.asarray(img.convert("RGBA"), dtype=np.uint8)
    if mode.startswith("I") or mode.startswith("F"):
        # 16/32-bit integer or float grayscale: scale to 0-255 ourselves, since
        # convert("L") would clip a 16-bit image's 0-65535 range at 255.
        arr = np.asarray(img).astype(np.float64)
        if arr.ndim != 2:
            arr = np.asarray(img.convert("F"), dtype=np.float64)
        finite = np.isfinite(arr)
        arr = np.where(finite, arr, 0.0)
        top = arr.max(initial=0.0)
        if mode.startswith("F") and top <= 1.0:
            arr = arr * 255.0  # float images in [0, 1]
        elif top > 255.0:
            arr = arr * (255.0 / 65535.0) if top <= 65535.0 else arr * (255.0 / top)
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    # CMYK, YCbCr, LAB, HSV, RGBX, ...: everything else has a sensible RGB rendering
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def digit_from_file(path) -> np.ndarray:
    """Read an image file and turn it into the 28x28 float32 MNIST-like digit (white on
    black, values in [0, 1]) the networks expect. ``ValueError`` if it holds no digit."""
    digit = preprocess_digit(read_image(path))
    if digit is None:
        raise ValueError("no digit found in the image (it is blank)")
    return digit
