"""The project as a package: the wheel built from this checkout (offline) holds mlp_core
with its MNIST, mlp_lab and the `mlp-core` command, and works installed on its own.

The wheel is built from a copy of the checkout, so the build's build/ and *.egg-info never
land in the work tree."""

from __future__ import annotations

import configparser
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert proc.returncode == 0, f"pip {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def _checkout_files() -> list[str]:
    """The files git has or would add here: tracked ones and untracked ones not ignored."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("checkout")
    for name in _checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    # --no-index: nothing is downloaded; --no-build-isolation: the venv's setuptools builds
    _pip("wheel", "--no-index", "--no-deps", "--no-build-isolation", "-w", str(out), str(source),
         cwd=source)
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, found {[w.name for w in wheels]}"
    return wheels[0]


def test_the_wheel_holds_both_packages_mnist_and_the_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top = {name.split("/")[0] for name in names}
        dist_info = next(t for t in top if t.endswith(".dist-info"))
        assert top == {"mlp_core", "mlp_lab", dist_info}, f"unexpected top-level entries: {top}"
        # every module of both packages in the checkout (at least __init__ and the CLI)
        modules = {path.relative_to(ROOT).as_posix()
                   for package in ("mlp_core", "mlp_lab") for path in (ROOT / package).rglob("*.py")}
        assert {"mlp_core/__init__.py", "mlp_core/cli.py", "mlp_lab/__init__.py"} <= modules
        missing = sorted(modules - set(names))
        assert not missing, f"modules missing from {wheel.name}: {missing}"
        # the bundled MNIST itself, byte for byte (not a pointer or a truncated copy)
        assert "mlp_core/data/mnist.npz" in names, f"mnist.npz is missing from {wheel.name}"
        bundled = (ROOT / "mlp_core" / "data" / "mnist.npz").read_bytes()
        assert _sha256(archive.read("mlp_core/data/mnist.npz")) == _sha256(bundled)
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{dist_info}/entry_points.txt").decode())
    assert dict(entry_points["console_scripts"]) == {"mlp-core": "mlp_core.cli:main"}
    assert not [n for n in names if n.startswith(("tests/", "pages/", "benchmarks/"))]


def test_the_installed_wheel_imports_from_elsewhere_and_runs_its_command(wheel, tmp_path):
    target, elsewhere = tmp_path / "target", tmp_path / "elsewhere"
    elsewhere.mkdir()
    _pip("install", "--no-index", "--no-deps", "--target", str(target), str(wheel), cwd=elsewhere)
    # only the installed copy on the path (numpy and the rest come from this venv); the
    # working directory is not the checkout, so its mlp_core cannot be picked up
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import mlp_core, mlp_lab\n"
            "from mlp_core.data import BUNDLED_MNIST\n"
            "print(mlp_core.__file__); print(mlp_lab.__file__); print(BUNDLED_MNIST)\n"
            "print(BUNDLED_MNIST.stat().st_size)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    core, lab, mnist, size = proc.stdout.split()
    for path in (core, lab, mnist):
        assert Path(path).is_relative_to(target), f"{path} is not the installed copy in {target}"
    assert int(size) == (ROOT / "mlp_core" / "data" / "mnist.npz").stat().st_size
    # the console script pip wrote runs mlp_core.cli:main
    script = target / "bin" / "mlp-core"
    assert script.is_file(), f"pip wrote no mlp-core script: {sorted(p.name for p in target.iterdir())}"
    proc = subprocess.run([str(script), "train", "--help"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--time-budget" in proc.stdout
