"""Every way the dashboard trains a network goes through the server's trainer pool.

The pool (``mlp_lab.pool``) is what keeps a class's server quick: at most
``MLP_LAB_MAX_RUNS`` networks train at once, each capped in steps and seconds. A training
loop started anywhere else (in a page's script thread, say) would train beside the limit,
as Replay's Record once did. So this test reads the source of ``mlp_lab`` and ``pages``,
finds every place that trains (a ``Trainer``'s ``run``, Keras' ``fit``) and every caller of
those functions, and checks each against the list below: the work a ``BackgroundRun`` or a
``SharedJobs`` job runs once it holds a trainer. A new training path fails here until it
goes through the pool and is added to the list, with the runtime test that shows it waits.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# function that trains -> why it is inside the pool (and the runtime test that shows it waits)
TRAINING_FUNCTIONS = {
    # a student's run: LabSession.start's BackgroundRun calls it once it has a slot
    # (test_classroom: test_further_runs_wait_in_line_and_start_on_their_own)
    "mlp_lab/lab.py:LabSession._train": "BackgroundRun('run')",
    # Replay's Record: called only by the BackgroundRun of LabSession.record_replay
    # (test_classroom: test_a_replay_recording_waits_for_a_trainer_like_a_run)
    "mlp_lab/replay.py:record": "BackgroundRun('replay')",
    # the ladder and the notebook re-run x10: Experiments.run_job, a SharedJobs job
    # (test_classroom: test_the_shared_ladder_takes_a_slot_from_the_same_trainer_pool)
    "mlp_lab/teaching.py:train_rung": "Experiments (SharedJobs)",
    # NumPy vs Keras: runs in a child process that KerasJobs (SharedJobs) starts once it
    # holds a slot (test_teaching_app: test_numpy_vs_keras_waits_for_a_free_trainer)
    "mlp_lab/keras_compare.py:compare": "KerasJobs child process (SharedJobs)",
}
# Who may call each training function: the pool's side of the door.
ALLOWED_CALLERS = {
    "mlp_lab/lab.py:LabSession._train": {"mlp_lab/lab.py:LabSession.start"},  # the run's work lambda
    "mlp_lab/replay.py:record": {"mlp_lab/lab.py:LabSession.record_replay"},  # its work() closure
    "mlp_lab/teaching.py:train_rung": {"mlp_lab/teaching.py:Experiments.run_job"},
    "mlp_lab/keras_compare.py:compare": {"mlp_lab/keras_compare.py:main"},  # the child's entry point
}


def _functions(path: Path):
    """(qualified name, node) of every function in ``path``, nested ones named after their
    outermost function (a closure is part of the function that makes it)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((f"{prefix}{child.name}", child))

    visit(tree, "")
    return found


def _sources():
    for folder in ("mlp_lab", "pages"):
        for path in sorted((ROOT / folder).glob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _trains(call: ast.Call) -> bool:
    """A trainer's run(steps=...) or a Keras model's fit(...)."""
    name = _called_name(call)
    if name == "fit":
        return True
    return name == "run" and any(k.arg in ("steps", "time_budget") for k in call.keywords)


def where_training_happens() -> set[str]:
    places = set()
    for rel, path in _sources():
        for qualname, node in _functions(path):
            if any(isinstance(n, ast.Call) and _trains(n) for n in ast.walk(node)):
                places.add(f"{rel}:{qualname}")
    return places


def callers_of(function: str) -> set[str]:
    """Every function of mlp_lab/ and pages/ whose body names ``function``'s last part."""
    short = function.rsplit(":", 1)[1].rsplit(".", 1)[-1]
    found = set()
    for rel, path in _sources():
        for qualname, node in _functions(path):
            here = f"{rel}:{qualname}"
            if here == function:
                continue
            for n in ast.walk(node):
                if isinstance(n, ast.Call) and _called_name(n) == short:
                    found.add(here)
                elif isinstance(n, ast.Attribute) and n.attr == short and not isinstance(n.ctx, ast.Store):
                    found.add(here)
    return found


def test_every_place_that_trains_is_a_known_path_through_the_pool():
    assert where_training_happens() == set(TRAINING_FUNCTIONS), (
        "a new place trains a network: send it through the trainer pool (mlp_lab/pool.py: a "
        "BackgroundRun or a SharedJobs job), then add it to TRAINING_FUNCTIONS with its test")


def test_each_training_function_is_only_called_from_inside_the_pool():
    for function, allowed in ALLOWED_CALLERS.items():
        assert callers_of(function) == allowed, function


def test_the_check_can_fail():
    # A page that trained in its own script thread would be found: the same walk over a
    # snippet that does it.
    snippet = ast.parse("def _train_here(trainer):\n    trainer.run(steps=100)\n")
    assert any(isinstance(n, ast.Call) and _trains(n) for n in ast.walk(snippet))
