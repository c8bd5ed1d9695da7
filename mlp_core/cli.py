"""The command line: ``python -m mlp_core {train,evaluate,predict} ...``.

    python -m mlp_core train --model dense --time-budget 30 --out dense.npz
    python -m mlp_core train --model notebook --steps 20000 --json
    python -m mlp_core evaluate dense.npz
    python -m mlp_core predict dense.npz my_digit.png another.jpg --json

Exit status: 0 success; 1 a file could not be predicted, or an unexpected error;
2 usage error or unreadable model file; 3 training diverged; 130 interrupted.
With ``--json`` the last line of stdout is one JSON object (``predict``: one per image).
Set ``MLP_LAB_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .activations import ACTIVATIONS
from .blas import blas_threads, set_blas_threads
from .data import load_mnist, scale, validation_split
from .losses import LOSSES
from .metrics import accuracy, confusion_matrix, per_class_accuracy
from .networks import INITS, build_model
from .optimizers import OPTIMIZERS
from .env import debug_mode
from .presets import PRESETS, parse_hidden
from .trainer import SCHEDULES, Trainer

N_TRAIN = 60_000

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


# ----------------------------------------------------------------------------- parsing
def _number(kind, low, *, inclusive: bool):
    """An argparse type: a finite ``kind`` (int or float) above ``low`` (or equal, if inclusive)."""
    word = "a whole number" if kind is int else "a number"
    bound = f"{'at least' if inclusive else 'more than'} {low}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {word}, got {text!r}") from None
        if not (math.isfinite(value) and (value >= low if inclusive else value > low)):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


_positive_int = _number(int, 1, inclusive=True)
_non_negative_int = _number(int, 0, inclusive=True)
_positive_float = _number(float, 0, inclusive=False)
_non_negative_float = _number(float, 0, inclusive=True)


def _hidden_sizes(text: str) -> list[int]:
    try:
        return list(parse_hidden(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlp_core",
        description="MLP Lab from the command line: train, evaluate and use MNIST networks.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train", help="train a network on MNIST and report its test accuracy",
        description="Train a network on the 60,000 MNIST training images, then measure it on "
                    "the 10,000 test images. Settings default to the chosen model's preset "
                    "(notebook: mse, sgd, lr 0.001, batch 1; dense: the best known settings); "
                    "every flag given overrides the preset.")
    train.add_argument("--model", required=True, choices=sorted(PRESETS),
                       help="which network and preset to start from")
    train.add_argument("--hidden", type=_hidden_sizes, metavar="SIZES",
                       help="hidden layer sizes of the dense model, e.g. 128,64")
    train.add_argument("--activation", choices=sorted(ACTIVATIONS), help="dense model only")
    train.add_argument("--loss", choices=LOSSES)
    train.add_argument("--optimizer", choices=OPTIMIZERS)
    train.add_argument("--lr", type=_positive_float, metavar="F", help="learning rate")
    train.add_argument("--batch-size", type=_positive_int, metavar="N")
    train.add_argument("--init", choices=INITS, help="weight initialisation")
    train.add_argument("--weight-decay", type=_non_negative_float, metavar="F")
    train.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    train.add_argument("--shift", type=_non_negative_int, metavar="PIXELS",
                       help="move each training image randomly by up to this many pixels, 0-4 "
                            "(data augmentation; the dense preset uses 1)")
    train.add_argument("--deskew", action=argparse.BooleanOptionalAction, default=None,
                       help="straighten every image (training, test, drawings) by its slant before "
                            "reading it; the dense preset does (--no-deskew: not)")
    train.add_argument("--strokes", action=argparse.BooleanOptionalAction, default=None,
                       help="even out the pen of every image (crisp edges, strokes about 2.4 pixels "
                            "wide) before reading it; the dense preset does (--no-strokes: not)")
    distort = train.add_argument_group(
        "distortions of the training images (data augmentation; each a maximum, 0 = none)")
    distort.add_argument("--rotation", type=_non_negative_float, metavar="DEGREES",
                         help="turn each image by up to this many degrees either way (0-45)")
    distort.add_argument("--scale", type=_non_negative_float, metavar="F",
                         help="make each digit up to this fraction bigger or smaller (0-0.5; 0.2: 80-120 %%)")
    distort.add_argument("--shear", type=_non_negative_float, metavar="F",
                         help="slant each digit by up to this many pixels sideways per row (0-1)")
    distort.add_argument("--elastic", type=_non_negative_float, metavar="PIXELS",
                         help="bend the strokes like a rubber sheet, up to this many pixels (0-4)")
    distort.add_argument("--thickness", type=_non_negative_float, metavar="F",
                         help="make the pen up to this much (0-1: one pixel) thicker or thinner")
    distort.add_argument("--augment-fraction", type=_non_negative_float, metavar="F",
                         help="the share of each batch that is distorted (0-1)")
    distort.add_argument("--flag-ones", type=_non_negative_float, metavar="F",
                         help="give this share (0-1) of the training set's 1s a flag at the top, as "
                              "many people write a 1 (the dense preset: 0.25)")
    distort.add_argument("--no-augment", action="store_true",
                         help="no distortions and no flagged 1s (the shift aside): every strength above 0")
    train.add_argument("--val-size", type=_non_negative_int, default=0, metavar="N",
                       help="hold out N training images to check accuracy during training (default 0)")
    length = train.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=_positive_int, metavar="N", help="train N steps")
    length.add_argument("--epochs", type=_positive_int, metavar="N",
                        help="train N passes over the training images")
    length.add_argument("--time-budget", type=_positive_float, metavar="SECONDS",
                        help="train for this many seconds")
    train.add_argument("--seed", type=int, default=0, help="initial weights and batch order (default 0)")
    train.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                       help="BLAS threads for the matrix products (default 1: fastest on a busy machine)")
    train.add_argument("--processes", type=int, choices=(1, 2), default=1,
                       help="2 trains on two processes, half of each batch in each (dense models with "
                            "relu and cross-entropy; one BLAS thread each): on an idle two-core "
                            "machine the fastest way (default 1)")
    train.add_argument("--out", type=Path, metavar="PATH", help="save the trained model here (.npz)")
    train.add_argument("--json", action="store_true", help="print the results as one JSON line")
    train.set_defaults(handler=cmd_train, subparser=train)

    evaluate = commands.add_parser(
        "evaluate", help="test accuracy, per-digit accuracy and confusion matrix of a saved model")
    evaluate.add_argument("model", type=Path, metavar="MODEL", help="a model file saved by train --out")
    evaluate.add_argument("--json", action="store_true", help="print the results as one JSON line")
    evaluate.set_defaults(handler=cmd_evaluate, subparser=evaluate)

    predict = commands.add_parser("predict", help="read the digit in image files (PNG, JPEG, ...)")
    predict.add_argument("model", type=Path, metavar="MODEL", help="a model file saved by train --out")
    predict.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--json", action="store_true", help="print one JSON line per image")
    predict.set_defaults(handler=cmd_predict, subparser=predict)
    return parser


# ----------------------------------------------------------------------------- output
def _clean(value):
    """JSON-safe copy: NumPy values to Python ones, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _print_json(obj) -> None:
    print(json.dumps(_clean(obj), allow_nan=False), flush=True)


def _error(message: str, as_json: bool = False) -> None:
    """One line on stderr (and a JSON error line on stdout with --json)."""
    message = " ".join(str(message).split()) or "unknown error"
    print(f"error: {message}", file=sys.stderr, flush=True)
    if as_json:
        _print_json({"error": message})


class _ProgressBar:
    """A one-line text progress bar on stderr, redrawn in place with ``\\r``."""

    def __init__(self, stream=sys.stderr, width: int = 24):
        self.stream, self.width = stream, width
        self.start = time.perf_counter()
        self.shown = False

    def __call__(self, trainer, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(self.width * fraction)
        loss = f"{trainer.last_loss:.4f}" if trainer.last_loss is not None else "-"
        line = (f"\r[{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%}  "
                f"step {trainer.step:,}  loss {loss}  {time.perf_counter() - self.start:.1f} s")
        self.stream.write(line.ljust(72))
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


# ----------------------------------------------------------------------------- train
DISTORTIONS = ("rotation", "scale", "shear", "elastic", "thickness")  # TrainConfig fields


def _train_settings(args, parser):
    """The model config and TrainConfig: the preset, overridden by every flag given."""
    preset_model, preset_training = PRESETS[args.model]
    model_cfg = dict(preset_model)
    if args.model != "dense":
        for flag, value in (("--hidden", args.hidden), ("--activation", args.activation)):
            if value is not None:
                parser.error(f"{flag} only applies to --model dense")
    if args.hidden is not None:
        model_cfg["hidden"] = args.hidden
    for key in ("activation", "loss", "init"):
        if getattr(args, key) is not None:
            model_cfg[key] = getattr(args, key)
    for key in ("deskew", "strokes"):
        if getattr(args, key) is not None:
            model_cfg[key] = getattr(args, key)
        if not model_cfg.get(key, True):
            del model_cfg[key]  # a model that does not prepare images has no such setting (as before)
    overrides = {"seed": args.seed, "processes": args.processes}
    if args.no_augment:
        overrides.update(dict.fromkeys((*DISTORTIONS, "flag_ones"), 0.0))
    for key in ("optimizer", "lr", "batch_size", "weight_decay", "schedule", "shift",
                *DISTORTIONS, "augment_fraction", "flag_ones"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.val_size >= N_TRAIN:
        parser.error(f"--val-size must be less than {N_TRAIN}, got {args.val_size}")
    n_train = N_TRAIN - args.val_size
    batch_size = overrides.get("batch_size", preset_training.batch_size)
    if batch_size > n_train:
        parser.error(f"--batch-size must be at most the {n_train} training images, got {batch_size}")
    try:
        train_cfg = dataclasses.replace(preset_training, **overrides)
    except ValueError as exc:
        parser.error(str(exc))
    return model_cfg, train_cfg


def cmd_train(args, parser) -> int:
    model_cfg, train_cfg = _train_settings(args, parser)
    try:
        model = build_model(model_cfg, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    if args.out is not None:  # fail now rather than after training
        if args.out.is_dir():
            parser.error(f"--out: {args.out} is a directory; give a file name such as model.npz")
        if not args.out.parent.is_dir():
            parser.error(f"--out: the directory {args.out.parent} does not exist")

    set_blas_threads(1 if train_cfg.processes > 1 else args.threads)
    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_val = y_val = None
    if args.val_size > 0:
        (x_train, y_train), (x_val, y_val) = validation_split(x_train, y_train, args.val_size, seed=args.seed)
    try:
        trainer = Trainer(model, x_train, y_train, train_cfg, x_val, y_val)
    except ValueError as exc:  # e.g. --processes 2 with a model it cannot split
        parser.error(str(exc))
    steps = args.steps
    if args.epochs is not None:
        steps = args.epochs * (len(x_train) // train_cfg.batch_size)

    progress = None if args.json else _ProgressBar()
    try:
        result = trainer.run(steps=steps, time_budget=args.time_budget, on_progress=progress)
    finally:
        trainer.close()
        if progress is not None:
            progress.close()

    test_accuracy = accuracy(y_test, model.predict(scale(x_test)))
    samples_per_second = (result.steps * train_cfg.batch_size / result.train_seconds
                          if result.train_seconds > 0 else None)
    diverged = result.status == "diverged"
    report = {
        "model": model.describe(),
        "kind": model.kind,
        "n_params": int(model.n_params),
        "config": {"model": model.config(), "training": train_cfg.to_dict()},
        "steps": result.steps,
        "weights_step": trainer.step,
        "epochs": trainer.epochs,
        "n_train": len(x_train),
        "val_size": args.val_size,
        "val_accuracy": trainer.history.val_accuracy[-1] if trainer.history.val_accuracy else None,
        "final_loss": trainer.last_loss,
        "train_seconds": result.train_seconds,
        "samples_per_second": samples_per_second,
        "blas_threads": blas_threads(),
        "test_accuracy": test_accuracy,
        "status": result.status,
        "reason": result.reason,
        "out": None,
    }
    if args.out is not None:
        # After a divergence the trainer has restored the last finite weights: those are saved.
        # The TrainConfig fields sit at the top level of "training", as the dashboard saves
        # them (mlp_lab.choices reads optimizer, lr, batch_size, schedule from there).
        training = {**train_cfg.to_dict(), **{key: report[key] for key in (
            "steps", "weights_step", "epochs", "n_train", "val_size", "val_accuracy",
            "final_loss", "train_seconds", "samples_per_second", "status", "reason")}}
        from .persistence import save_model  # noqa: PLC0415 (only needed with --out)
        saved = save_model(model, args.out, training=_clean(training), extra=_clean({
            "test_accuracy": test_accuracy, "created_by": "python -m mlp_core train",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        report["out"] = str(saved)

    if args.json:
        _print_json(report)
    else:
        speed = f"{samples_per_second:,.0f} samples/s" if samples_per_second else "- samples/s"
        print(f"model:          {report['model']}, {report['n_params']:,} parameters")
        print(f"training:       {result.steps:,} steps ({trainer.epochs:.2f} epochs) in "
              f"{result.train_seconds:.1f} s, {speed}")
        print(f"ended:          {result.status}: {result.reason}")
        if report["val_accuracy"] is not None:
            print(f"val accuracy:   {report['val_accuracy']:.2%} ({args.val_size:,} held-out images)")
        print(f"test accuracy:  {test_accuracy:.2%} (10,000 test images)")
        if report["out"]:
            note = " (the last finite weights, from before the divergence)" if diverged else ""
            print(f"saved to:       {report['out']}{note}")
    if diverged:
        if not args.json:
            print(f"warning: {result.reason}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK


# ----------------------------------------------------------------------------- evaluate / predict
def _load_model_or_error(path: Path, as_json: bool):
    from .persistence import load_model  # noqa: PLC0415

    try:
        return load_model(path)
    except (ValueError, OSError) as exc:
        _error(f"cannot load the model {path}: {exc}", as_json)
        return None


def cmd_evaluate(args, parser) -> int:
    loaded = _load_model_or_error(args.model, args.json)
    if loaded is None:
        return EXIT_USAGE
    model, meta = loaded
    _, (x_test, y_test) = load_mnist()
    predicted = model.predict(scale(x_test))
    acc = accuracy(y_test, predicted)
    per_class = per_class_accuracy(y_test, predicted)
    cm = confusion_matrix(y_test, predicted)
    if args.json:
        _print_json({"model": model.describe(), "config": model.config(), "path": str(args.model),
                     "n_images": len(y_test), "test_accuracy": acc,
                     "per_class_accuracy": per_class, "confusion_matrix": cm})
        return EXIT_OK
    print(f"model:          {model.describe()} ({args.model})")
    print(f"test accuracy:  {acc:.2%} on {len(y_test):,} test images\n")
    totals = cm.sum(axis=1)
    print("digit  images  correct  accuracy")
    for digit in range(10):
        print(f"{digit:>5}  {totals[digit]:>6,}  {cm[digit, digit]:>7,}  {per_class[digit]:>8.2%}")
    print("\nconfusion matrix (rows: true digit, columns: predicted digit)")
    print("true " + "".join(f"{d:>6}" for d in range(10)))
    for digit in range(10):
        print(f"{digit:>4} " + "".join(f"{n:>6}" for n in cm[digit]))
    return EXIT_OK


def cmd_predict(args, parser) -> int:
    from .images import digit_from_file  # noqa: PLC0415 (imports Pillow lazily)

    loaded = _load_model_or_error(args.model, args.json)
    if loaded is None:
        return EXIT_USAGE
    model, _ = loaded
    failures = 0
    for path in args.images:
        try:
            digit_image = digit_from_file(path)
            proba = model.predict_proba(digit_image[None])[0].astype(float)
        except (ValueError, OSError) as exc:
            failures += 1
            message = " ".join(str(exc).split())
            if args.json:
                _print_json({"path": str(path), "error": message})
            else:
                print(f"error: {path}: {message}", file=sys.stderr, flush=True)
            continue
        digit = int(proba.argmax())
        if args.json:
            _print_json({"path": str(path), "digit": digit, "confidence": float(proba[digit]),
                         "probabilities": [float(p) for p in proba]})
        else:
            shares = "  ".join(f"{d}:{p:.2f}" for d, p in enumerate(proba))
            print(f"{path}: {digit} ({proba[digit]:.1%} sure)   {shares}", flush=True)
    return EXIT_FAILED if failures else EXIT_OK


# ----------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (``__main__`` passes it to SystemExit)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2 here, as argparse does
    debug = debug_mode()
    try:
        return args.handler(args, args.subparser)  # its .error() shows the command's usage
    except BrokenPipeError:  # e.g. `... | head`: the reader left, nothing more to say
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the exit-time flush cannot fail again
        except OSError:
            pass
        return EXIT_FAILED
    except KeyboardInterrupt:
        if debug:
            raise
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: no traceback for the user
        if debug:
            raise
        _error(str(exc) or type(exc).__name__, getattr(args, "json", False))
        return EXIT_FAILED
