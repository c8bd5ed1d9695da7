"""Saving and loading trained models: one ``.npz`` file per model, safe to load from anyone.

Format (``"mlp-lab-model"``, version 1): an ordinary NumPy ``.npz`` archive holding

* one float array per parameter, named as in ``model.params`` (``w1``, ``b1``, ...);
* ``__meta__``: a 1-D uint8 array with UTF-8 JSON::

      {"format": "mlp-lab-model", "version": 1,
       "model": model.config(),          # build_model(meta["model"]) rebuilds the network
       "training": {...}, "extra": {...},  # free-form, JSON values
       "param_shapes": {"w1": [128, 28], ...}}

Loading never unpickles anything (``np.load(..., allow_pickle=False)``) and checks the file
before trusting it: size caps, each array's header read before its data (so a header that
claims an absurd shape is refused without allocating), the settings, the parameter names,
shapes, dtypes and finiteness. Every problem with a file's content is a ``ValueError`` whose
message begins ``"This file is not a valid MLP Lab model: "``.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .networks import Network, build_model

FORMAT = "mlp-lab-model"
VERSION = 1
META_KEY = "__meta__"

MAX_FILE_BYTES = 50 * 1024 * 1024  # a 784-1024-1024-10 float64 MLP is ~15 MB
MAX_MEMBER_ELEMENTS = 10_000_000  # per array in the file
MAX_TOTAL_BYTES = 200 * 1024 * 1024  # uncompressed, all members together (zip bombs)
MAX_MEMBERS = 256
MAX_MODEL_PARAMS = 20_000_000  # refuse settings that would build a larger network
MAX_LAYERS = 64

ERROR_PREFIX = "This file is not a valid MLP Lab model: "

# What a damaged archive can make zipfile / zlib / numpy raise while we read it.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                UnicodeDecodeError, KeyError, zlib.error, struct.error, NotImplementedError,
                RuntimeError, OverflowError, TypeError, IndexError, RecursionError,
                SyntaxError, tokenize.TokenError)


class _Invalid(ValueError):
    """A ValueError raised by our own checks (its message is already for the user)."""


def _invalid(reason: str) -> _Invalid:
    return _Invalid(ERROR_PREFIX + reason)


# ----------------------------------------------------------------------------- saving
def _jsonable(value):
    """json.dumps ``default``: NumPy scalars and arrays, Paths and tuples as plain values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _archive_arrays(model: Network, training: dict | None, extra: dict | None) -> dict[str, np.ndarray]:
    """The arrays to write, after checking the model is one ``load_model`` will accept."""
    config = model.config()
    reference = build_model(config)  # what loading will rebuild: names and shapes must match
    expected = reference.param_shapes()
    params = model.params
    if set(params) != set(expected):
        missing, unexpected = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
        raise ValueError(f"cannot save the model: its parameters do not match its settings "
                         f"(missing {missing}, unexpected {unexpected})")
    arrays: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        value = np.asarray(params[name])
        if value.shape != shape:
            raise ValueError(f"cannot save the model: parameter {name} has shape {value.shape}, "
                             f"its settings need {shape}")
        if value.dtype not in (np.float32, np.float64):
            raise ValueError(f"cannot save the model: parameter {name} has dtype {value.dtype}, "
                             "expected float32 or float64")
        if not np.isfinite(value).all():
            raise ValueError(f"cannot save the model: parameter {name} contains NaN or infinite "
                             "values (did training diverge?)")
        arrays[name] = np.ascontiguousarray(value)
    if META_KEY in arrays:
        raise ValueError(f"cannot save the model: a parameter is named {META_KEY!r}")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": config,
        "training": dict(training or {}),
        "extra": dict(extra or {}),
        "param_shapes": {name: list(shape) for name, shape in expected.items()},
    }
    try:
        text = json.dumps(meta, default=_jsonable, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save the model: training/extra must hold JSON values ({exc})") from exc
    arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return arrays


def model_to_bytes(model: Network, training: dict | None = None, extra: dict | None = None) -> bytes:
    """The model as the bytes of an ``.npz`` file (for a download button)."""
    arrays = _archive_arrays(model, training, extra)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_model(model: Network, path, training: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``model`` to ``path`` (an ``.npz`` file) and return the path.

    The file is written to a temporary file in the same directory, synced, then renamed
    over ``path``: a reader never sees half a file, and a failed save leaves any previous
    file at ``path`` untouched. ``training`` and ``extra`` are JSON-able dicts kept in the
    file's metadata (e.g. the training settings and results).
    """
    path = Path(path)
    data = model_to_bytes(model, training, extra)  # all checks happen before touching the disk
    directory = path.parent if str(path.parent) else Path(".")
    tmp = tempfile.NamedTemporaryFile(delete=False, dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp.name, 0o666 & ~umask)  # NamedTemporaryFile makes 0600 files
        os.replace(tmp.name, path)
    except BaseException:
        try:
            os.unlink(tmp.name)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort: not every system allows this)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


# ----------------------------------------------------------------------------- loading
def load_model(path_or_file) -> tuple[Network, dict]:
    """Read a model saved by ``save_model``: returns ``(model, meta)``.

    ``path_or_file``: a path, an open binary file / file-like object (e.g. an upload), or
    the file's bytes. Raises ``FileNotFoundError`` for a missing path and ``ValueError``
    (message starting "This file is not a valid MLP Lab model: ...") for anything wrong
    with the content. Nothing in the file is ever executed.
    """
    if isinstance(path_or_file, (bytes, bytearray, memoryview)):
        return model_from_bytes(bytes(path_or_file))
    if hasattr(path_or_file, "read"):
        return model_from_bytes(_read_capped(path_or_file))
    path = Path(path_or_file)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{ERROR_PREFIX}{path} is a directory, not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _invalid(f"the file is {size / 2**20:.0f} MB; model files are at most "
                       f"{MAX_FILE_BYTES // 2**20} MB")
    with open(path, "rb") as f:
        return model_from_bytes(_read_capped(f))


def _read_capped(f: BinaryIO) -> bytes:
    """Read a whole file object, refusing more than ``MAX_FILE_BYTES`` (read in chunks, so
    no buffer of the cap's size is allocated up front)."""
    chunks, total = [], 0
    try:
        while True:
            chunk = f.read(2**20)
            if not chunk:
                break
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise ValueError("the model file must be opened in binary mode")
            chunks.append(bytes(chunk))
            total += len(chunk)
            if total > MAX_FILE_BYTES:
                raise _invalid(f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    except OSError as exc:
        raise _invalid(f"the file could not be read ({exc})") from exc
    return b"".join(chunks)


@dataclass(frozen=True)
class ModelFileInfo:
    """What a model file describes, read from its array headers and metadata alone (no
    parameter data read, no network built): see ``inspect_model_bytes``."""

    config: dict  # the settings build_model takes (meta["model"])
    meta: dict
    shapes: dict[str, tuple[int, ...]]  # every parameter array's shape, from its header
    dtypes: dict[str, np.dtype]

    @property
    def n_values(self) -> int:
        """Numbers stored in the parameter arrays."""
        return sum(math.prod(shape) for shape in self.shapes.values())


def _check_bytes(data: bytes) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise _invalid(f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    if not data:
        raise _invalid("not a MLP Lab model file (.npz): the file is empty")
    if data.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(io.BytesIO(data)):
        raise _invalid("not a MLP Lab model file (.npz): it begins like one, but its end is "
                       "missing or damaged (an interrupted download or copy?)")
    if not data.startswith(b"PK\x03\x04") or not zipfile.is_zipfile(io.BytesIO(data)):
        raise _invalid("not a MLP Lab model file (.npz): it is not a zip archive at all "
                       "(another kind of file, or a damaged or truncated download)")


def inspect_model_bytes(data: bytes) -> ModelFileInfo:
    """What the ``.npz`` file's bytes describe, from the headers and the metadata only, so
    a caller can refuse a network before anything of its size is allocated. Raises
    ``ValueError`` as ``model_from_bytes`` does for a file that is not a model."""
    _check_bytes(data)
    try:
        headers = _check_archive(data)
        meta = _parse_meta(data, headers)
    except _Invalid:
        raise
    except _READ_ERRORS as exc:
        raise _invalid(f"the file is damaged ({type(exc).__name__}: {exc})") from exc
    params = {name: value for name, value in headers.items() if name != META_KEY}
    return ModelFileInfo(config=dict(meta["model"]), meta=meta,
                         shapes={name: shape for name, (shape, _) in params.items()},
                         dtypes={name: dtype for name, (_, dtype) in params.items()})


def model_from_bytes(data: bytes, dtype=None) -> tuple[Network, dict]:
    """Read a model from the bytes of an ``.npz`` file (e.g. an upload): ``(model, meta)``.
    ``dtype`` (float32 or float64): the network is built in it whatever the file's own
    (its weights converted); None keeps the file's."""
    _check_bytes(data)
    try:
        headers = _check_archive(data)
        meta = _parse_meta(data, headers)
        settings = dict(meta["model"])
        if dtype is not None:
            settings["dtype"] = np.dtype(dtype).name
        model = _rebuild(settings)
        params = _read_params(data, headers, model)
    except _Invalid:
        raise
    except MemoryError as exc:
        raise _invalid("the file needs more memory than is available") from exc
    except _READ_ERRORS as exc:
        raise _invalid(f"the file is damaged ({type(exc).__name__}: {exc})") from exc
    model.set_params(params)
    return model, meta


def _check_archive(data: bytes) -> dict[str, tuple]:
    """Read every member's .npy header (not its data): ``{name: (shape, dtype)}``."""
    headers: dict[str, tuple] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _invalid(f"the archive holds {len(infos)} files, far more than a model has")
        total = sum(info.file_size for info in infos)
        if total > MAX_TOTAL_BYTES:
            raise _invalid(f"the archive unpacks to {total / 2**20:.0f} MB, more than a model can need")
        for info in infos:
            member = info.filename
            if not member.endswith(".npy"):
                raise _invalid(f"the archive holds {member!r}, which is not a NumPy array (.npy)")
            name = member[:-4]
            if name in headers:
                raise _invalid(f"the archive holds {name!r} twice")
            with zf.open(info) as f:
                shape, dtype, header_bytes = _read_npy_header(f, name)
            if dtype.hasobject:
                raise _invalid(f"array {name!r} holds Python objects (pickled data), which are "
                               "never loaded: model files hold numbers only")
            elements = math.prod(int(n) for n in shape)  # Python ints: no overflow
            if elements > MAX_MEMBER_ELEMENTS:
                raise _invalid(f"array {name!r} claims shape {tuple(shape)} ({elements:,} values), "
                               f"more than the {MAX_MEMBER_ELEMENTS:,} allowed per array")
            if elements * dtype.itemsize > info.file_size - header_bytes:
                raise _invalid(f"array {name!r} is truncated: its header announces shape "
                               f"{tuple(shape)} of {dtype}, but the data is shorter")
            headers[name] = (tuple(shape), dtype)
    return headers


def _read_npy_header(f, name: str):
    """``(shape, dtype, header length)`` of the .npy member open as ``f``; data not read."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _invalid(f"array {name!r} uses .npy format version {version}, "
                           "which MLP Lab does not read")
        return tuple(shape), dtype, f.tell()
    except (_Invalid, zipfile.BadZipFile, EOFError):
        raise
    except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, TokenError...
        raise _invalid(f"array {name!r} has a damaged header ({type(exc).__name__}: {exc})") from exc


def _load_member(data: bytes, name: str) -> np.ndarray:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:  # never unpickles
        return npz[name]


def _parse_meta(data: bytes, headers: dict) -> dict:
    if META_KEY not in headers:
        raise _invalid(f"it has no {META_KEY!r} entry (the description of the network); "
                       "was it saved by MLP Lab?")
    shape, dtype = headers[META_KEY]
    if dtype == np.uint8 and len(shape) <= 1:
        raw = _load_member(data, META_KEY)
        try:
            text = raw.tobytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid(f"its {META_KEY!r} entry is not UTF-8 text") from exc
    elif dtype.kind == "U" and len(shape) <= 1:
        raw = _load_member(data, META_KEY)
        text = "".join(str(s) for s in raw.reshape(-1))
    else:
        raise _invalid(f"its {META_KEY!r} entry has dtype {dtype} and shape {shape}; "
                       "expected UTF-8 JSON bytes")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"its {META_KEY!r} entry is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise _invalid(f"its {META_KEY!r} entry is not a JSON object")
    if meta.get("format") != FORMAT:
        raise _invalid(f"its format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _invalid(f"its format version {version!r} is not a positive integer")
    if version > VERSION:
        raise _invalid(f"it was saved by a newer MLP Lab (format version {version}); this "
                       f"version reads format version {VERSION}. Update MLP Lab to open it")
    if not isinstance(meta.get("model"), dict):
        raise _invalid("its metadata has no 'model' settings")
    for key in ("training", "extra"):
        if not isinstance(meta.setdefault(key, {}), dict):
            raise _invalid(f"its metadata entry {key!r} is not a JSON object")
    return meta


def _rebuild(config: dict) -> Network:
    """``build_model(config)``, after making sure the settings cannot ask for a giant network."""
    if config.get("kind") == "dense" and "hidden" in config:
        hidden = config["hidden"]
        if not isinstance(hidden, list) or not all(
                isinstance(h, int) and not isinstance(h, bool) for h in hidden):
            raise _invalid(f"its hidden layer sizes {hidden!r} are not a list of whole numbers")
        if len(hidden) > MAX_LAYERS:
            raise _invalid(f"it has {len(hidden)} hidden layers; at most {MAX_LAYERS} are supported")
        sizes = [784, *hidden, 10]
        if all(h >= 1 for h in hidden):
            n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
            if n_params > MAX_MODEL_PARAMS:
                raise _invalid(f"its settings describe a network of {n_params:,} parameters, "
                               f"more than the {MAX_MODEL_PARAMS:,} supported")
    try:
        return build_model(config)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise _invalid(f"its model settings {config!r} are not usable: {exc}") from exc


def _read_params(data: bytes, headers: dict, model: Network) -> dict[str, np.ndarray]:
    expected = model.param_shapes()
    found = set(headers) - {META_KEY}
    missing, unexpected = sorted(set(expected) - found), sorted(found - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing parameter(s) {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected entr{'y' if len(unexpected) == 1 else 'ies'} {', '.join(unexpected)}")
        raise _invalid(f"{' and '.join(parts)} for a {model.describe()} "
                       f"(expected {', '.join(expected)})")
    for name, shape in expected.items():  # check every header before loading any data
        got_shape, dtype = headers[name]
        if got_shape != shape:
            raise _invalid(f"parameter {name} has shape {got_shape}, but a {model.describe()} "
                           f"needs {shape}")
        if dtype not in (np.float32, np.float64):
            raise _invalid(f"parameter {name} has dtype {dtype}; parameters must be float32 or float64")
    params = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        for name in expected:
            value = npz[name]
            with np.errstate(over="ignore", invalid="ignore"):
                cast = value.astype(model.dtype)
            if not np.isfinite(value).all():
                what = "NaN" if np.isnan(value).any() else "infinite values"
                raise _invalid(f"parameter {name} contains {what} (the training that produced "
                               "it diverged)")
            if not np.isfinite(cast).all():
                raise _invalid(f"parameter {name} holds values too large for {model.dtype}")
            params[name] = cast
    return params
