"""The layers stay one-way: mlp_core (NumPy only) -> mlp_lab (no Streamlit outside its glue)
-> pages. Checked twice: every import statement in the source (lazy ones inside functions
too), and what importing every module really loads, in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLUE = {"session", "links", "uploads", "classroom"}  # the mlp_lab modules that may import streamlit
NEVER_IN_CORE = ("streamlit", "plotly", "tensorflow", "keras", "mlp_lab")


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (absolute names; relative
    imports count as the package's own)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def offenders(package: str, forbidden, allowed=None) -> dict[str, list[str]]:
    """Module file -> the forbidden modules it imports; ``allowed``: file stem -> the
    forbidden modules that file may import."""
    found, allowed = {}, allowed or {}
    for path in sorted((ROOT / package).glob("*.py")):
        bad = sorted(n for n in imported_modules(path)
                     if n.split(".")[0] in forbidden and n.split(".")[0] not in allowed.get(path.stem, ()))
        if bad:
            found[path.name] = bad
    return found


def test_the_source_of_mlp_core_imports_no_ui_and_no_tensorflow():
    # One exception: load_mnist(source="keras") asks Keras for MNIST, lazily, when a user
    # chooses that source (the bundled file is the default).
    assert offenders("mlp_core", NEVER_IN_CORE, {"data": ("tensorflow",)}) == {}


def test_the_source_of_mlp_lab_imports_streamlit_only_in_its_glue():
    glue = {name: ("streamlit",) for name in GLUE}
    assert offenders("mlp_lab", ("streamlit", "streamlit_drawable_canvas"), glue) == {}
    # and the check itself can fail: the glue does import streamlit
    assert "streamlit" in imported_modules(ROOT / "mlp_lab" / "session.py")


@pytest.mark.parametrize("package, forbidden, skip", [
    ("mlp_core", NEVER_IN_CORE, ()),
    ("mlp_lab", ("streamlit", "tensorflow", "keras"), GLUE),
])
def test_importing_every_module_loads_nothing_forbidden(package, forbidden, skip):
    modules = [f"{package}.{p.stem}" for p in sorted((ROOT / package).glob("*.py"))
               if p.stem not in skip and p.stem != "__main__"]
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(forbidden)!r}))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [], f"importing {package} loaded these"
