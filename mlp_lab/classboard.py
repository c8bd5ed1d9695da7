"""The teacher's view of the class: board rows, challenges and their ranking, pushed lessons.

Pure logic (no Streamlit): ``mlp_lab.keeper`` turns each lab in memory into a ``StatusRow``
(``status_row``) and measures challenge runs; ``pages/class.py`` shows what the store
holds; ``mlp_lab.classroom`` (glue) shows students the pushed lesson. Everything the Class
page shows or pushes goes through the store, so several server processes sharing one
store make one class.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import secrets
from dataclasses import dataclass

import segno

from .choices import ModelChoice
from .store import MAX_DISPLAY_NAME_CHARS, ChallengeEntry, StatusRow
from .teaching import LESSONS, LESSONS_BY_KEY, params_to_settings, settings_to_params
from .text import shorten

CURVE_POINTS = 40  # validation-accuracy points per board row: enough for a curve, a few hundred bytes
ACTIVE_HOURS = 3.0  # the board lists students active this recently

# Friendly names, never personal data: one is drawn from the student id (the same id, the
# same name), until the student types their own.
_COLOURS = ("Amber", "Azure", "Blue", "Bronze", "Coral", "Crimson", "Cyan", "Golden", "Green", "Grey",
            "Indigo", "Ivory", "Jade", "Lilac", "Lime", "Magenta", "Maroon", "Mint", "Navy", "Ochre",
            "Olive", "Orange", "Pearl", "Pink", "Plum", "Purple", "Red", "Ruby", "Rust", "Sage",
            "Sand", "Scarlet", "Silver", "Sky", "Slate", "Teal", "Violet", "White", "Yellow", "Copper")
_ANIMALS = ("Otter", "Badger", "Beaver", "Bison", "Crane", "Dolphin", "Eagle", "Falcon", "Ferret", "Finch",
            "Fox", "Gecko", "Heron", "Ibex", "Koala", "Lark", "Lemur", "Lynx", "Marten", "Moose",
            "Newt", "Ocelot", "Orca", "Owl", "Panda", "Puffin", "Quail", "Rabbit", "Raven", "Robin",
            "Salmon", "Seal", "Shrew", "Sparrow", "Stork", "Swan", "Tapir", "Tiger", "Toucan", "Wolf")

STATE_WORDS = {"training": "training", "waiting": "waiting for a trainer", "idle": "not training",
               "diverged": "diverged"}
KIND_WORDS = {"any": "any model", "notebook": "the notebook model", "dense": "a dense MLP"}


def default_name(student_id: str) -> str:
    """A friendly name drawn from the id ("Blue Otter"): the same id always gets the same."""
    h = hashlib.blake2b(student_id.encode(), digest_size=8, person=b"mlp-lab-name").digest()
    return f"{_COLOURS[h[0] % len(_COLOURS)]} {_ANIMALS[h[1] % len(_ANIMALS)]}"


def shown_name(student_id: str, chosen: str | None) -> str:
    """What the class sees: the chosen name (shortened, control characters gone), else the
    friendly one. Plain text: escape it before putting it in Markdown."""
    if chosen and chosen.strip():
        return shorten(" ".join(chosen.split()), MAX_DISPLAY_NAME_CHARS)
    return default_name(student_id)


def unique_names(pairs: list[tuple[str, str | None]]) -> dict[str, str]:
    """student id -> shown name, with " (2)", " (3)" after names that repeat (two students
    who chose the same, or drew the same friendly one), in the order given."""
    names, seen = {}, {}
    for sid, chosen in pairs:
        if sid in names:
            continue
        name = shown_name(sid, chosen)
        seen[name] = seen.get(name, 0) + 1
        names[sid] = name if seen[name] == 1 else f"{name} ({seen[name]})"
    return names


# --- a lab as a board row -------------------------------------------------------------------
def thin_curve(steps, accuracy, points: int = CURVE_POINTS) -> tuple[tuple[int, float], ...]:
    """At most ``points`` (step, accuracy) pairs, always keeping the last."""
    n = min(len(steps), len(accuracy))
    if n == 0:
        return ()
    if n <= points:
        chosen = range(n)
    else:
        chosen = sorted({round(i * (n - 1) / (points - 1)) for i in range(points)})
    return tuple((int(steps[i]), float(accuracy[i])) for i in chosen)


def status_row(student_id: str, lab, active_at: float) -> StatusRow:
    """The board row of a ``LabSession`` now (reads consistent copies; no lock held long)."""
    status = lab.status()
    snap = lab.snapshot(include_params=False)
    history = snap.history
    curve = thin_curve(history.val_steps, history.val_accuracy)
    if status.waiting:
        state = "waiting"
    elif status.running:
        state = "training"
    elif status.status == "diverged":
        state = "diverged"
    else:
        state = "idle"
    loss = status.last_loss
    return StatusRow(
        student_id=student_id, network=status.description, kind=status.kind,
        optimizer=lab.choice.optimizer, lr=float(status.lr), steps=int(status.step),
        last_loss=None if loss is None or not math.isfinite(loss) else float(loss),
        val_accuracy=curve[-1][1] if curve else None, test_accuracy=status.test_accuracy,
        test_step=status.test_step, state=state, active_at=float(active_at), curve=curve)


def same_row(a: StatusRow | None, b: StatusRow) -> bool:
    """Equal but for ``active_at``: nothing the board shows changed."""
    return a is not None and a.__dict__ | {"active_at": 0} == b.__dict__ | {"active_at": 0}


def board_table(rows: list[StatusRow], now: float) -> list[dict]:
    """The board as table rows (for st.dataframe: sortable by every column)."""
    names = unique_names([(r.student_id, r.display_name) for r in rows])
    table = []
    for r in rows:
        table.append({
            "Student": names[r.student_id], "Network": r.network, "Optimizer": r.optimizer,
            "Learning rate": r.lr, "Steps": r.steps, "Last loss": r.last_loss,
            "Validation %": None if r.val_accuracy is None else round(100 * r.val_accuracy, 1),
            "Test %": None if r.test_accuracy is None else round(100 * r.test_accuracy, 2),
            "State": STATE_WORDS.get(r.state, r.state), "Active": ago(now - r.active_at),
        })
    return table


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return "now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


# --- challenges -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Challenge:
    """A rule runs are ranked by. ``metric`` "accuracy": the best test accuracy (with at most
    ``max_steps`` steps, if set); "steps": the fewest steps that reach ``target`` test
    accuracy. ``kind``: "any", "notebook" or "dense" (the model the run must use)."""

    id: str
    metric: str = "accuracy"
    max_steps: int | None = 2000
    target: float | None = None  # a fraction 0-1 (metric "steps")
    kind: str = "any"
    started_at: float = 0.0

    def __post_init__(self):
        if self.metric not in ("accuracy", "steps"):
            raise ValueError(f"metric must be 'accuracy' or 'steps', got {self.metric!r}")
        if self.kind not in KIND_WORDS:
            raise ValueError(f"kind must be one of {sorted(KIND_WORDS)}, got {self.kind!r}")
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or int(self.max_steps) < 1):
            raise ValueError(f"max_steps must be a whole number >= 1, got {self.max_steps!r}")
        if self.metric == "steps" and not (isinstance(self.target, (int, float)) and 0 < self.target <= 1):
            raise ValueError(f"a 'fewest steps' challenge needs a target from 0 to 1, got {self.target!r}")
        if not (isinstance(self.id, str) and 1 <= len(self.id) <= 64):
            raise ValueError("a challenge needs an id of 1 to 64 characters")

    @classmethod
    def new(cls, metric: str, max_steps: int | None, target: float | None, kind: str, now: float) -> Challenge:
        return cls(secrets.token_hex(8), metric, None if max_steps is None else int(max_steps),
                   None if target is None else float(target), kind, float(now))

    def to_dict(self) -> dict:
        return {"id": self.id, "metric": self.metric, "max_steps": self.max_steps, "target": self.target,
                "kind": self.kind, "started_at": self.started_at}

    @classmethod
    def from_dict(cls, value) -> Challenge | None:
        """The challenge in a pushed value, or None if it is not one (never raises)."""
        try:
            return cls(str(value["id"]), str(value["metric"]),
                       None if value.get("max_steps") is None else int(value["max_steps"]),
                       None if value.get("target") is None else float(value["target"]),
                       str(value.get("kind", "any")), float(value.get("started_at", 0.0)))
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        model = "" if self.kind == "any" else f", with {KIND_WORDS[self.kind]}"
        if self.metric == "accuracy":
            limit = f" with at most {self.max_steps:,} steps" if self.max_steps else ""
            return f"Best test accuracy{limit}{model}"
        limit = f" (at most {self.max_steps:,} steps)" if self.max_steps else ""
        return f"Reach {self.target:.0%} test accuracy with the fewest steps{limit}{model}"

    def counts(self, kind: str, steps: int) -> bool:
        """Whether a run of this model kind and step count can enter (before its accuracy)."""
        return (self.kind in ("any", kind)) and steps >= 1 and (self.max_steps is None or steps <= self.max_steps)

    def qualifies(self, entry: ChallengeEntry) -> bool:
        if not self.counts(entry.kind, entry.steps):
            return False
        return self.metric == "accuracy" or entry.test_accuracy >= self.target - 1e-12

    def _key(self, entry: ChallengeEntry):
        if self.metric == "accuracy":
            return (-entry.test_accuracy, entry.steps, entry.measured_at)
        return (entry.steps, -entry.test_accuracy, entry.measured_at)

    def rank(self, entries: list[ChallengeEntry]) -> list[ChallengeEntry]:
        """Each student's best run that meets the rule, best first (ties: fewer steps, then
        the earlier measurement)."""
        best: dict[str, ChallengeEntry] = {}
        for entry in entries:
            if entry.challenge_id != self.id or not self.qualifies(entry):
                continue
            held = best.get(entry.student_id)
            if held is None or self._key(entry) < self._key(held):
                best[entry.student_id] = entry
        return sorted(best.values(), key=self._key)


def leaderboard_table(challenge: Challenge, entries: list[ChallengeEntry]) -> list[dict]:
    ranked = challenge.rank(entries)
    names = unique_names([(e.student_id, e.display_name) for e in ranked])
    return [{"Place": place, "Student": names[e.student_id], "Test %": round(100 * e.test_accuracy, 2),
             "Steps": e.steps, "Network": e.network, "Learning rate": e.lr}
            for place, e in enumerate(ranked, start=1)]


# --- moving the class to a lesson ---------------------------------------------------------------
@dataclass(frozen=True)
class Push:
    """A lesson (or settings) the teacher pushed: what the banner says and what Join sets."""

    id: str
    title: str  # "lesson 3 · A better start", or "the teacher's settings"
    choice: ModelChoice
    lr: float
    steps: int
    lesson: str | None  # the lesson's key, if it is one


def lesson_number(key: str) -> int:
    return [lesson.key for lesson in LESSONS].index(key) + 1


def push_lesson(key: str) -> dict:
    lesson = LESSONS_BY_KEY[key]
    return {"id": secrets.token_hex(8), "lesson": key,
            "params": settings_to_params(lesson.choice, lesson.lr, lesson.train_steps)}


def push_settings(choice: ModelChoice, lr: float, steps: int) -> dict:
    return {"id": secrets.token_hex(8), "lesson": None, "params": settings_to_params(choice, lr, steps)}


_PUSHES: dict[str, Push | None] = {}  # checked pushes by their JSON text (checking builds networks)


def push_from(value) -> Push | None:
    """The push in a stored value, checked like a link's settings (None if it is not one).
    Every student's banner asks: each distinct value is checked once per process."""
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return None
    if text not in _PUSHES:
        if len(_PUSHES) > 64:
            _PUSHES.clear()
        _PUSHES[text] = _check_push(value)
    return _PUSHES[text]


def _check_push(value) -> Push | None:
    if not isinstance(value, dict) or not isinstance(value.get("params"), dict):
        return None
    params = {str(k): str(v) for k, v in value["params"].items()}
    parsed = params_to_settings(params)
    if parsed is None:
        return None
    choice, lr, steps, problems = parsed
    if problems:
        return None
    key = value.get("lesson")
    if key in LESSONS_BY_KEY:
        lesson = LESSONS_BY_KEY[key]
        title = f"lesson {lesson.title}"
    else:
        key, title = None, "new settings"
    return Push(str(value.get("id", "")), title, choice, lr, steps, key)


def banner_text(push: Push) -> str:
    """Plain text (escape it for Markdown)."""
    if push.lesson:
        return f"Your teacher started {push.title}."
    network = ("the notebook model" if push.choice.kind == "notebook" else
               "a dense MLP 784-" + "-".join(map(str, push.choice.hidden)) + "-10")
    return f"Your teacher shared {push.title}: {network}, {push.choice.describe_training()}, lr {push.lr:g}."


def qr_png(text: str, scale: int = 6) -> bytes:
    """``text`` (the address students open) as a QR code, a PNG image (segno, pure Python)."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=scale, border=2)
    return buffer.getvalue()
