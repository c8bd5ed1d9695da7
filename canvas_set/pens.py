"""Pen paths for the canvas set: how a hand might draw each digit, with the variations
people bring (slant, size, placement, aspect, wobble, speed, several strokes, style).

Pure NumPy, no browser: ``make_set.py`` draws these paths with the mouse on the Test
page's real canvas, and the browser test draws a sample of them live with the same code.

A *design* is a digit's shape in a unit box (x to the right, y down, both in [0, 1]) as a
list of strokes, each an (n, 2) array of points along the pen's path. ``drawing(label,
rng)`` picks a style of that digit, perturbs its control points, then applies the hand's
variations and returns the strokes in canvas pixels plus a description of what was done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CANVAS = 280  # the Test page's canvas, in CSS pixels (mlp_lab.drawing.CANVAS_SIZE)
MARGIN = 4  # keep the pen this far inside the canvas's edge


# ---- building blocks: points along a pen's path, in the unit box -------------------------

def arc(cx, cy, rx, ry, start, end, n=40) -> np.ndarray:
    """Points on an ellipse from angle ``start`` to ``end`` (degrees; 0 = right, 90 =
    down on the screen, so a growing angle turns clockwise as seen)."""
    a = np.radians(np.linspace(start, end, n))
    return np.column_stack([cx + rx * np.cos(a), cy + ry * np.sin(a)])


def line(p0, p1, n=12) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) * np.asarray(p0, float) + t * np.asarray(p1, float)


def spline(points, n_per=10) -> np.ndarray:
    """A Catmull-Rom curve through ``points`` (a smooth pen path through each of them)."""
    p = np.asarray(points, float)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0.0, 1.0, n_per, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(p[-2][None])
    return np.vstack(out)


def join(*pieces) -> np.ndarray:
    """One stroke made of pieces drawn one after another (the pen stays down)."""
    return np.vstack([np.asarray(piece, float) for piece in pieces])


# ---- the designs: each returns (strokes, style) with random changes of shape -------------

JITTER = 0.05  # sd of a control point's move, in the unit box: hands are not precise


def _j(rng, points, sd=JITTER):
    """Control points moved at random: no two hands place them alike."""
    p = np.asarray(points, float)
    return p + rng.normal(0.0, sd, p.shape)


def _oval(rng, cx, cy, rx, ry, start, sweep, sd=0.035, step=45.0) -> np.ndarray:
    """An ellipse drawn by hand: control points every ``step`` degrees from ``start`` over
    ``sweep`` (negative: anticlockwise as seen), each moved at random, joined smoothly."""
    n = max(4, int(round(abs(sweep) / step)) + 1)
    a = np.radians(np.linspace(start, start + sweep, n))
    pts = np.column_stack([cx + rx * np.cos(a), cy + ry * np.sin(a)])
    return spline(_j(rng, pts, sd), 10)


def _zero(rng):
    style = rng.choice(["closed oval", "open oval", "clockwise oval", "narrow oval", "round",
                        "egg", "overlapping tail"])
    rx = {"narrow oval": rng.uniform(0.17, 0.25), "round": rng.uniform(0.42, 0.5)}.get(
        style, rng.uniform(0.28, 0.4))
    start = rng.uniform(-120, -60)
    if style == "egg":  # pointed at the top, round at the bottom
        ctrl = [[0.55, 0.0], [0.3, 0.22], [0.18, 0.62], [0.42, 1.0], [0.78, 0.82], [0.8, 0.4],
                [0.6, 0.06], [0.5, 0.04]]
        return [spline(_j(rng, ctrl, 0.035), 9)], style
    if style == "open oval":  # the pen lifts before it meets the start: a gap at the top
        sweep = rng.uniform(310, 340)
    elif style == "overlapping tail":  # goes on well past the start
        sweep = rng.uniform(400, 440)
    else:
        sweep = rng.uniform(355, 395)
    sign = 1 if style == "clockwise oval" else -1
    path = _oval(rng, 0.5, 0.5, rx, 0.5, start, sign * sweep)
    # a hand's oval is lopsided: wider at the top or the bottom
    lop = rng.uniform(-0.15, 0.15)
    path[:, 0] += lop * (path[:, 1] - 0.5) * (path[:, 0] - 0.5) * 4
    return [path], style


def _one(rng):
    style = rng.choice(["stick", "stick", "flag", "long flag", "flag and base", "curved stick"])
    top, bottom = _j(rng, [[0.52, 0.0], [0.48, 1.0]], 0.04)
    if style == "curved stick":
        mid = (top + bottom) / 2 + [rng.choice([-1, 1]) * rng.uniform(0.04, 0.08), 0]
        stem = spline([top, mid, bottom])
    else:
        stem = line(top, bottom, 16)
    if "flag" in style:
        if style == "long flag":  # the up-stroke a third of the height long or more
            flag = top + [-rng.uniform(0.22, 0.35), rng.uniform(0.22, 0.38)]
        else:
            flag = top + [-rng.uniform(0.12, 0.3), rng.uniform(0.12, 0.3)]
        flag = _j(rng, [flag], 0.03)[0]
        strokes = [join(line(flag, top, 6), stem)]
        if style == "flag and base":
            half = rng.uniform(0.18, 0.32)
            strokes.append(line(bottom + [-half, rng.normal(0, 0.03)], bottom + [half, rng.normal(0, 0.03)], 8))
        return strokes, style
    return [stem], style


def _two(rng):
    style = rng.choice(["round", "loop at the base", "angular", "swan", "curly top", "curled base"])
    if style in ("round", "curled base"):
        ctrl = [[0.12, 0.28], [0.3, 0.04], [0.62, 0.02], [0.85, 0.22], [0.78, 0.46], [0.45, 0.75],
                [0.08, 1.0]]
        base = [[0.08, 1.0], [0.5, 0.98], [0.92, 0.98]]
        if style == "curled base":  # the base turns up at its end
            base = [[0.08, 1.0], [0.45, 0.96], [0.8, 0.98], [0.95, 0.86]]
    elif style == "loop at the base":
        ctrl = [[0.12, 0.25], [0.32, 0.03], [0.65, 0.03], [0.85, 0.22], [0.75, 0.48], [0.42, 0.72]]
        loop = [[0.2, 0.88], [0.14, 1.0], [0.32, 1.0], [0.34, 0.85], [0.22, 0.82], [0.27, 0.96]]
        ctrl = np.vstack([_j(rng, ctrl), _j(rng, loop, 0.02) + rng.normal(0, 0.03, 2)])
        base = [[0.27, 0.96], [0.6, 0.99], [0.92, 0.95]]
    elif style == "angular":
        ctrl = [[0.1, 0.2], [0.45, 0.0], [0.85, 0.15], [0.8, 0.35], [0.1, 1.0]]
        base = [[0.1, 1.0], [0.92, 1.0]]
    elif style == "curly top":  # starts with a little hook curled in
        ctrl = [[0.3, 0.3], [0.18, 0.22], [0.28, 0.06], [0.6, 0.0], [0.84, 0.2], [0.76, 0.48],
                [0.42, 0.76], [0.1, 1.0]]
        base = [[0.1, 1.0], [0.5, 0.97], [0.9, 1.0]]
    else:  # swan: a long curved neck and a short base
        ctrl = [[0.1, 0.35], [0.2, 0.08], [0.55, 0.0], [0.82, 0.18], [0.8, 0.45], [0.55, 0.7],
                [0.18, 0.97]]
        base = [[0.18, 0.97], [0.55, 0.93], [0.88, 1.0]]
    if style != "loop at the base":
        ctrl = _j(rng, ctrl)
    base = _j(rng, base, 0.04)
    base[0] = ctrl[-1]
    return [join(spline(ctrl, 8), spline(base, 6)[1:])], style


def _three(rng):
    style = rng.choice(["round", "flat top", "two strokes", "pointed middle", "small top",
                        "looped middle"])
    upper = [[0.15, 0.15], [0.45, 0.0], [0.78, 0.1], [0.75, 0.35], [0.42, 0.48]]
    lower = [[0.42, 0.48], [0.8, 0.6], [0.82, 0.85], [0.5, 1.0], [0.12, 0.88]]
    if style == "flat top":  # a bar, a diagonal, then the belly
        upper = [[0.12, 0.02], [0.82, 0.02], [0.4, 0.44]]
        lower = [[0.4, 0.44], [0.78, 0.56], [0.85, 0.82], [0.55, 1.0], [0.15, 0.9]]
        u = _j(rng, upper)
        lo = _j(rng, lower)
        lo[0] = u[-1]
        return [join(line(u[0], u[1], 10), line(u[1], u[2], 10), spline(lo, 10)[1:])], style
    if style == "small top":  # the upper bow half the size of the lower
        upper = [[0.3, 0.1], [0.5, 0.0], [0.68, 0.1], [0.64, 0.28], [0.45, 0.36]]
        lower = [[0.45, 0.36], [0.85, 0.52], [0.86, 0.84], [0.5, 1.0], [0.1, 0.86]]
    if style == "pointed middle":
        upper[-1] = [0.3, 0.47]
        lower[0] = [0.3, 0.47]
    u, lo = _j(rng, upper), _j(rng, lower)
    if style == "two strokes":
        lo[0] = u[-1] + rng.normal(0, 0.04, 2)
        return [spline(u, 10), spline(lo, 10)], style
    lo[0] = u[-1]
    if style == "looped middle":  # a small loop where the bows meet
        m = u[-1]
        loop = _j(rng, [m + [-0.1, -0.02], m + [-0.08, 0.08], m + [0.04, 0.05]], 0.02)
        return [spline(np.vstack([u, loop, lo[1:]]), 10)], style
    if style == "pointed middle":  # a cusp: two curves meeting at a point
        return [join(spline(u, 10), spline(lo, 10)[1:])], style
    return [spline(np.vstack([u, lo[1:]]), 10)], style


def _four(rng):
    style = rng.choice(["open", "open", "closed", "closed in one stroke", "narrow closed top",
                        "open, stem off the bar"])
    bar_y = rng.uniform(0.52, 0.74)
    right = rng.uniform(0.58, 0.74)
    if style.startswith("open"):  # two uprights, the top left open
        left_top = _j(rng, [[0.22, 0.0]])[0]
        corner = _j(rng, [[0.12, bar_y]])[0]
        end = [rng.uniform(0.85, 1.0), bar_y + rng.normal(0, 0.04)]
        if style == "open":
            stem_top = [right + rng.normal(0, 0.04), rng.uniform(0.0, 0.12)]
        else:  # the upright starts above the left arm and ends short of the bar's end
            stem_top = [right + rng.normal(0, 0.04), rng.uniform(-0.12, 0.0)]
            end[0] = right + rng.uniform(0.1, 0.2)
        stem_bottom = [stem_top[0] + rng.normal(0, 0.05), 1.0]
        return [join(line(left_top, corner, 12), line(corner, end, 12)[1:]),
                line(stem_top, stem_bottom, 16)], style
    apex = [right + rng.normal(0, 0.03), 0.0]
    if style == "narrow closed top":  # a tall, thin triangle: the diagonal nearly upright
        corner = [apex[0] - rng.uniform(0.22, 0.32), bar_y + rng.normal(0, 0.03)]
        end = [apex[0] + rng.uniform(0.1, 0.24), bar_y + rng.normal(0, 0.03)]
        bottom = [apex[0] + rng.normal(0, 0.04), 1.0]
        return [join(line(apex, corner, 14), line(corner, end, 12)[1:]), line(apex, bottom, 16)], style
    corner = _j(rng, [[0.04, bar_y]])[0]
    end = [rng.uniform(0.85, 1.0), bar_y + rng.normal(0, 0.04)]
    bottom = [apex[0] + rng.normal(0, 0.05), 1.0]
    if style == "closed":  # a triangle at the top: the diagonal meets the upright (roughly)
        stem_top = np.asarray(apex) + rng.normal(0, 0.03, 2)
        return [join(line(apex, corner, 14), line(corner, end, 12)[1:]), line(stem_top, bottom, 16)], style
    return [join(line(bottom, apex, 16), line(apex, corner, 14)[1:], line(corner, end, 12)[1:])], style


def _five(rng):
    style = rng.choice(["bar last", "bar first", "one stroke", "round belly", "detached bar",
                        "short neck"])
    neck_top = _j(rng, [[0.22, 0.02]])[0]
    neck = _j(rng, [[0.17, 0.45]])[0]
    belly = _j(rng, [[0.5, 0.36], [0.8, 0.5], [0.82, 0.78], [0.52, 0.99], [0.12, 0.88]])
    if style == "round belly":
        belly = _j(rng, [[0.45, 0.38], [0.85, 0.55], [0.78, 0.92], [0.4, 1.0], [0.08, 0.8]])
    elif style == "short neck":  # the belly starts high and is big
        neck = _j(rng, [[0.2, 0.3]], 0.04)[0]
        belly = _j(rng, [[0.48, 0.3], [0.85, 0.46], [0.84, 0.8], [0.5, 1.0], [0.12, 0.86]], 0.04)
    body = join(line(neck_top, neck, 10), spline(np.vstack([neck, belly]), 9)[1:])
    bar_end = [rng.uniform(0.75, 0.98), neck_top[1] + rng.normal(0, 0.05)]
    if style == "one stroke":
        return [join(line(bar_end, neck_top, 10), body[1:])], style
    if style == "detached bar":  # the bar floats above and right of the neck, not touching it
        gap = [rng.uniform(0.06, 0.14), -rng.uniform(0.03, 0.08)]
        return [body, line(neck_top + gap, [bar_end[0] + gap[0] * 0.5, bar_end[1] + gap[1]], 10)], style
    bar = line(neck_top + rng.normal(0, 0.02, 2), bar_end, 10)
    return ([bar, body] if style == "bar first" else [body, bar]), style


def _six(rng):
    style = rng.choice(["closed loop", "open loop", "big loop", "straight stem", "small loop, tall stem"])
    top = _j(rng, [[0.64, 0.0]])[0]
    if style == "straight stem":
        stem = [top, _j(rng, [[0.2, 0.62]], 0.04)[0]]
    elif style == "small loop, tall stem":
        top = _j(rng, [[0.56, 0.0]], 0.04)[0]
        stem = [top, _j(rng, [[0.32, 0.28]], 0.04)[0], _j(rng, [[0.2, 0.66]], 0.04)[0]]
    else:
        stem = [top, _j(rng, [[0.32, 0.2]])[0], _j(rng, [[0.15, 0.58]], 0.04)[0]]
    r = {"big loop": rng.uniform(0.3, 0.34), "small loop, tall stem": rng.uniform(0.16, 0.21)}.get(
        style, rng.uniform(0.23, 0.29))
    loop = _j(rng, [[0.2, 0.88], [0.2 + r, 1.0], [0.2 + 2 * r, 1.0 - r], [0.2 + r, 1.0 - 2 * r],
                    [0.2 + 0.15 * r, 1.0 - 1.4 * r]], 0.03)
    end = [[0.17, 1.0 - 1.0 * r]] if style != "open loop" else [[0.2 + 0.6 * r, 1.02 - 2 * r]]
    pts = np.vstack([stem, loop, _j(rng, end, 0.02)])
    return [spline(pts, 9)], style


def _seven(rng):
    style = rng.choice(["plain", "crossbar", "curved stem", "hooked top", "crossbar and curved stem",
                        "short top bar", "wavy bar"])
    left = _j(rng, [[0.08, 0.03]])[0]
    if style == "short top bar":  # the bar half the width, the stem long
        left = _j(rng, [[rng.uniform(0.35, 0.5), 0.05]], 0.04)[0]
    corner = _j(rng, [[0.92, 0.02]])[0]
    foot = _j(rng, [[rng.uniform(0.25, 0.55), 1.0]])[0]
    if "curved" in style:
        mid = (corner + foot) / 2 + [rng.uniform(0.04, 0.12), 0.0]
        stem = spline([corner, mid, foot], 10)
    else:
        stem = line(corner, foot, 16)
    if style == "wavy bar":  # the bar sags and rises again
        mid = (left + corner) / 2 + [0.0, rng.uniform(0.04, 0.08)]
        top = spline([left, mid, corner], 8)
    else:
        top = line(left, corner, 12)
    if style == "hooked top":  # a small down-tick before the bar
        top = join(line(left + [0.0, rng.uniform(0.1, 0.22)], left, 5), top[1:])
    strokes = [join(top, stem[1:])]
    if "crossbar" in style:
        y = rng.uniform(0.45, 0.6)
        x = corner[0] + (foot[0] - corner[0]) * (y - corner[1]) / (foot[1] - corner[1])
        half = rng.uniform(0.15, 0.3)
        shift = rng.normal(0, 0.05)
        strokes.append(line([x - half + shift, y + rng.normal(0, 0.03)],
                            [x + half + shift, y + rng.normal(0, 0.03)], 8))
    return strokes, style


def _eight(rng):
    style = rng.choice(["one stroke", "one stroke", "two loops", "open top", "small top loop", "lopsided",
                        "snowman"])
    w_top = rng.uniform(0.17, 0.23) if style == "small top loop" else rng.uniform(0.24, 0.34)
    waist = rng.uniform(0.38, 0.44) if style == "small top loop" else rng.uniform(0.42, 0.54)
    if style in ("two loops", "snowman"):  # two loops drawn one after the other
        top = _oval(rng, 0.5, waist / 2, w_top, waist / 2, 90, -370, 0.025)
        bottom = _oval(rng, 0.5 + rng.normal(0, 0.04), (1 + waist) / 2, rng.uniform(0.32, 0.42),
                       (1 - waist) / 2, -90, 370, 0.025)
        if style == "snowman":  # one stroke: round the top, then round the bottom
            return [join(top, bottom)], style
        return [top, bottom], style
    ctrl = [[0.5 + w_top, 0.12], [0.5, 0.0], [0.5 - w_top, 0.14], [0.45, waist - 0.06], [0.5, waist],
            [0.88, 0.72], [0.55, 1.0], [0.12, 0.8], [0.48, waist + 0.02], [0.5 + w_top, 0.22],
            [0.5 + w_top - 0.04, 0.08]]
    ctrl = np.asarray(ctrl)
    if style == "lopsided":  # the top loop pushed to one side and the bottom to the other
        side = rng.choice([-1, 1]) * rng.uniform(0.08, 0.16)
        ctrl[ctrl[:, 1] < waist, 0] += side
        ctrl[ctrl[:, 1] > waist + 0.01, 0] -= side * 0.5
    if style == "open top":  # stops before it reaches the start
        ctrl = np.vstack([ctrl[:-2], [[0.5 + w_top * 0.7, 0.3]]])
    return [spline(_j(rng, ctrl, 0.035), 9)], style


def _nine(rng):
    style = rng.choice(["straight tail", "curved tail", "open loop", "two strokes", "small loop",
                        "tiny loop", "hooked tail"])
    r = {"small loop": rng.uniform(0.21, 0.25), "tiny loop": rng.uniform(0.16, 0.2)}.get(
        style, rng.uniform(0.25, 0.34))
    cy = r * rng.uniform(0.85, 1.05) + 0.01
    cx = 0.78 - r
    if style == "open loop":  # the pen starts below the top: the loop never closes
        loop = _oval(rng, cx, cy, r, cy, rng.uniform(-40, -20), -rng.uniform(315, 340), 0.025)
    else:
        loop = _oval(rng, cx, cy, r, cy, rng.uniform(-5, 15), -rng.uniform(360, 385), 0.025)
    joint = loop[-1]
    if style == "curved tail":
        tail = spline(_j(rng, [joint, [0.8, 0.6], [0.62, 0.95], [0.3, 0.95]], 0.04), 8)
    elif style == "hooked tail":  # the tail ends in a hook to the left
        tail = spline(_j(rng, [joint, [0.76, 0.7], [0.62, 0.98], [0.45, 0.9]], 0.03), 8)
    else:
        tail = line(joint, _j(rng, [[0.74, 1.0]], 0.05)[0], 14)
    if style == "two strokes":
        stem_top = [loop[:, 0].max() + rng.normal(0, 0.03), rng.uniform(0.0, 0.12)]
        return [loop, line(stem_top, tail[-1], 14)], style
    return [join(loop, tail[1:])], style


DESIGNS = {0: _zero, 1: _one, 2: _two, 3: _three, 4: _four, 5: _five, 6: _six, 7: _seven,
           8: _eight, 9: _nine}


# ---- the hand: slant, size, place, aspect, wobble, speed --------------------------------

@dataclass
class Drawing:
    label: int
    strokes: list[np.ndarray]  # each (n, 2), canvas pixels, in the order they are drawn
    steps: int  # mouse-move interpolation steps between recorded points (the hand's speed)
    pauses_ms: list[int]  # pen-up time after each stroke but the last
    style: str  # what was drawn, for labels.csv


def _resample(path: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` pixels along the path (a fast hand gives the mouse few)."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(3, int(np.ceil(s[-1] / spacing)) + 1)
    t = np.linspace(0.0, s[-1], n)
    return np.column_stack([np.interp(t, s, path[:, 0]), np.interp(t, s, path[:, 1])])


def _bend(rng, strokes, amount=0.06):
    """The whole shape bent a little, smoothly: one part of the digit drawn bigger,
    wider or further over than another (every stroke moved by the same field, so where
    strokes meet they still meet)."""
    k = rng.uniform(0.5, 1.5, (2, 2))  # cycles across the box, per axis of the move
    phase = rng.uniform(0, 2 * np.pi, (2, 2))
    amp = rng.uniform(0, amount, 2)
    out = []
    for s in strokes:
        x, y = s[:, 0], s[:, 1]
        dx = amp[0] * np.sin(2 * np.pi * k[0, 0] * y + phase[0, 0]) * np.cos(np.pi * k[0, 1] * x + phase[0, 1])
        dy = amp[1] * np.sin(2 * np.pi * k[1, 0] * x + phase[1, 0]) * np.cos(np.pi * k[1, 1] * y + phase[1, 1])
        out.append(s + np.column_stack([dx, dy]))
    return out


def drawing(label: int, rng: np.random.Generator) -> Drawing:
    """One hand-drawn ``label``: a style, perturbed, slanted, scaled, placed, wobbled."""
    strokes, style = DESIGNS[label](rng)
    strokes = _bend(rng, strokes)
    if len(strokes) > 1:  # a pen put down again lands a little off where it was meant to
        strokes = [strokes[0]] + [s + rng.normal(0, 0.025, 2) for s in strokes[1:]]
    pts = np.vstack(strokes)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    strokes = [s - centre for s in strokes]  # the design's box centred on 0

    slant = float(rng.choice([rng.uniform(-20, 20), rng.uniform(0, 20), rng.normal(6, 5)]))
    slant = float(np.clip(slant, -20, 20))  # degrees, + = the top leans right
    rotation = float(rng.normal(0, 7))
    aspect = float(np.exp(rng.uniform(np.log(0.6), np.log(1.45))))  # width / height of the hand
    where = rng.choice(["centre", "off-centre", "off-centre", "corner"], p=[0.3, 0.25, 0.25, 0.2])
    height_frac = rng.uniform(0.36, 0.5) if where == "corner" else rng.uniform(0.42, 0.93)

    shear = np.tan(np.radians(slant))
    c, s_ = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    height_px = height_frac * (CANVAS - 2 * MARGIN)
    out = []
    for stroke in strokes:
        p = stroke * [aspect, 1.0]
        p = np.column_stack([p[:, 0] - shear * p[:, 1], p[:, 1]])  # y down: the top goes right
        p = p @ np.array([[c, s_], [-s_, c]])
        out.append(p * height_px)
    pts = np.vstack(out)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    size = hi - lo
    fit = min(1.0, (CANVAS - 2 * MARGIN) / size.max())  # a wide slanted digit still fits
    out = [p * fit for p in out]
    lo, hi = lo * fit, hi * fit
    room = (CANVAS - 2 * MARGIN) - (hi - lo)  # where the box can go
    if where == "centre":
        frac = 0.5 + rng.normal(0, 0.04, 2)
    elif where == "corner":
        frac = np.array([rng.choice([0.0, 1.0]), rng.choice([0.0, 1.0])]) + rng.uniform(0.0, 0.12, 2) * [1, 1]
        frac = np.where(frac > 1, 2 - frac, frac)
    else:
        frac = rng.uniform(0.1, 0.9, 2)
    offset = MARGIN + np.clip(frac, 0, 1) * room - lo

    # px, a slow waver (relative to the digit's height: a big digit wavers more)
    wobble = float(rng.choice([rng.uniform(0.5, 2.0), rng.uniform(2.0, 5.0), rng.uniform(5.0, 8.0)]))
    wobble *= float(np.clip(height_frac / 0.75, 0.5, 1.0))
    tremor = float(rng.uniform(0.0, 1.2))  # px, per point
    # the hand's speed: a slow hand gives the mouse a point every few pixels, a fast one
    # every 15-25 (the canvas joins them with straight pieces)
    spacing = float(rng.choice([rng.uniform(5, 9), rng.uniform(9, 15), rng.uniform(15, 25)]))
    steps = int(rng.integers(1, 4))
    result = []
    for p in out:
        p = _resample(p + offset, spacing)
        t = np.linspace(0, 1, len(p))
        for axis in range(2):
            f = rng.uniform(0.5, 2.5)
            p[:, axis] += wobble * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        p += rng.normal(0, tremor, p.shape)
        result.append(np.clip(np.round(p, 1), MARGIN, CANVAS - MARGIN))
    pauses = [int(rng.integers(60, 500)) for _ in result[:-1]]
    n_points = sum(len(p) for p in result)
    description = (f"{style}; slant {slant:+.0f} deg; height {height_frac:.0%}; {where}; "
                   f"aspect {aspect:.2f}; wobble {wobble:.1f} px; {len(result)} stroke"
                   f"{'s' if len(result) > 1 else ''}; {n_points} points, {steps} steps")
    return Drawing(label, result, steps, pauses, description)


def plan(n_per_class: int, seed: int) -> list[Drawing]:
    """The whole set: ``n_per_class`` drawings of each digit, shuffled, from one seed."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class)
    rng.shuffle(labels)
    return [drawing(int(label), rng) for label in labels]


def preview(d: Drawing, width: int = 22):
    """The drawing rasterised with Pillow (white, round ends, on black): a quick look
    without a browser; the set itself is the canvas's own PNGs."""
    from PIL import Image, ImageDraw  # noqa: PLC0415 (only for a look at the paths)

    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    for p in d.strokes:
        xy = [tuple(q) for q in p]
        draw.line(xy, fill=255, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):
            draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)
    return image
