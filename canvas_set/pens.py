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


# ---- the designs: each returns (strokes, style) with small random changes of shape --------

def _j(rng, points, sd=0.03):
    """Control points moved a little at random: no two hands place them alike."""
    p = np.asarray(points, float)
    return p + rng.normal(0.0, sd, p.shape)


def _zero(rng):
    style = rng.choice(["closed oval", "open oval", "clockwise oval", "narrow oval", "round"])
    rx = {"narrow oval": rng.uniform(0.2, 0.27), "round": rng.uniform(0.42, 0.5)}.get(
        style, rng.uniform(0.3, 0.4))
    ry = 0.5
    if style == "open oval":  # the pen lifts before it meets the start: a gap at the top
        sweep = rng.uniform(300, 335)
    else:
        sweep = rng.uniform(365, 395)  # overshoots the start a little
    start = rng.uniform(-110, -60)
    sign = 1 if style == "clockwise oval" else -1
    path = arc(0.5, 0.5, rx, ry, start, start + sign * sweep, 60)
    # a hand's oval is lopsided: a little wider at the top or the bottom
    lop = rng.uniform(-0.06, 0.06)
    path[:, 0] += lop * (path[:, 1] - 0.5) * (path[:, 0] - 0.5) * 4
    return [path], style


def _one(rng):
    style = rng.choice(["stick", "stick", "flag", "flag and base", "curved stick"])
    top, bottom = _j(rng, [[0.52, 0.0], [0.48, 1.0]], 0.02)
    if style == "curved stick":
        mid = (top + bottom) / 2 + [rng.choice([-1, 1]) * rng.uniform(0.04, 0.08), 0]
        stem = spline([top, mid, bottom])
    else:
        stem = line(top, bottom, 16)
    if style.startswith("flag"):
        flag = _j(rng, [[0.52 - rng.uniform(0.15, 0.3), rng.uniform(0.18, 0.32)]], 0.02)[0]
        strokes = [join(line(flag, top, 6), stem)]
        if style == "flag and base":
            half = rng.uniform(0.18, 0.3)
            strokes.append(line(bottom + [-half, 0.0], bottom + [half, rng.normal(0, 0.02)], 8))
        return strokes, style
    return [stem], style


def _two(rng):
    style = rng.choice(["round", "loop at the base", "angular", "swan"])
    if style == "round":
        ctrl = [[0.12, 0.28], [0.3, 0.04], [0.62, 0.02], [0.85, 0.22], [0.78, 0.46], [0.45, 0.75],
                [0.08, 1.0]]
        base = [[0.08, 1.0], [0.5, 0.98], [0.92, 0.98]]
    elif style == "loop at the base":
        ctrl = [[0.12, 0.25], [0.32, 0.03], [0.65, 0.03], [0.85, 0.22], [0.75, 0.48], [0.42, 0.74],
                [0.2, 0.9], [0.14, 1.0], [0.3, 0.98], [0.32, 0.86], [0.22, 0.84], [0.26, 0.96]]
        base = [[0.26, 0.96], [0.6, 0.99], [0.92, 0.95]]
    elif style == "angular":
        ctrl = [[0.1, 0.2], [0.45, 0.0], [0.85, 0.15], [0.8, 0.35], [0.1, 1.0]]
        base = [[0.1, 1.0], [0.92, 1.0]]
    else:  # swan: a long curved neck and a short base
        ctrl = [[0.1, 0.35], [0.2, 0.08], [0.55, 0.0], [0.82, 0.18], [0.8, 0.45], [0.55, 0.7],
                [0.18, 0.97]]
        base = [[0.18, 0.97], [0.55, 0.93], [0.88, 1.0]]
    ctrl = _j(rng, ctrl, 0.025)
    base = _j(rng, base, 0.025)
    base[0] = ctrl[-1]
    return [join(spline(ctrl, 8), spline(base, 6)[1:])], style


def _three(rng):
    style = rng.choice(["round", "flat top", "two strokes", "pointed middle"])
    upper = [[0.15, 0.15], [0.45, 0.0], [0.78, 0.1], [0.75, 0.35], [0.42, 0.48]]
    lower = [[0.42, 0.48], [0.8, 0.6], [0.82, 0.85], [0.5, 1.0], [0.12, 0.88]]
    if style == "flat top":
        upper = [[0.12, 0.02], [0.82, 0.02], [0.4, 0.44]]
        lower = [[0.4, 0.44], [0.78, 0.56], [0.85, 0.82], [0.55, 1.0], [0.15, 0.9]]
        u = _j(rng, upper, 0.025)
        lo = _j(rng, lower, 0.025)
        lo[0] = u[-1]
        return [join(line(u[0], u[1], 10), line(u[1], u[2], 10), spline(lo, 10)[1:])], style
    if style == "pointed middle":
        upper[-1] = [0.3, 0.47]
        lower[0] = [0.3, 0.47]
    u, lo = _j(rng, upper, 0.025), _j(rng, lower, 0.025)
    if style == "two strokes":
        lo[0] = u[-1] + rng.normal(0, 0.02, 2)
        return [spline(u, 10), spline(lo, 10)], style
    lo[0] = u[-1]
    if style == "pointed middle":  # a cusp: two curves meeting at a point
        return [join(spline(u, 10), spline(lo, 10)[1:])], style
    return [spline(np.vstack([u, lo[1:]]), 10)], style


def _four(rng):
    style = rng.choice(["open", "open", "closed", "closed in one stroke"])
    bar_y = rng.uniform(0.55, 0.72)
    right = rng.uniform(0.58, 0.72)
    if style == "open":  # two uprights, the top left open
        left_top = _j(rng, [[0.22, 0.0]], 0.03)[0]
        corner = _j(rng, [[0.12, bar_y]], 0.03)[0]
        end = [rng.uniform(0.85, 0.98), bar_y + rng.normal(0, 0.02)]
        stem_top = [right + rng.normal(0, 0.03), rng.uniform(0.0, 0.1)]
        stem_bottom = [right + rng.normal(0, 0.04), 1.0]
        return [join(line(left_top, corner, 12), line(corner, end, 12)[1:]),
                line(stem_top, stem_bottom, 16)], style
    apex = [right + rng.normal(0, 0.02), 0.0]
    corner = _j(rng, [[0.04, bar_y]], 0.03)[0]
    end = [rng.uniform(0.85, 1.0), bar_y + rng.normal(0, 0.02)]
    bottom = [apex[0] + rng.normal(0, 0.03), 1.0]
    if style == "closed":  # a triangle at the top: the diagonal meets the upright
        return [join(line(apex, corner, 14), line(corner, end, 12)[1:]), line(apex, bottom, 16)], style
    return [join(line(bottom, apex, 16), line(apex, corner, 14)[1:], line(corner, end, 12)[1:])], style


def _five(rng):
    style = rng.choice(["bar last", "bar first", "one stroke", "round belly"])
    neck_top = _j(rng, [[0.22, 0.02]], 0.03)[0]
    neck = _j(rng, [[0.17, 0.45]], 0.03)[0]
    belly = _j(rng, [[0.5, 0.36], [0.8, 0.5], [0.82, 0.78], [0.52, 0.99], [0.12, 0.88]], 0.03)
    if style == "round belly":
        belly = _j(rng, [[0.45, 0.38], [0.85, 0.55], [0.78, 0.92], [0.4, 1.0], [0.08, 0.8]], 0.03)
    body = join(line(neck_top, neck, 10), spline(np.vstack([neck, belly]), 9)[1:])
    bar_end = [rng.uniform(0.78, 0.95), neck_top[1] + rng.normal(0, 0.03)]
    if style == "one stroke":
        return [join(line(bar_end, neck_top, 10), body[1:])], style
    bar = line(neck_top + rng.normal(0, 0.015, 2), bar_end, 10)
    return ([bar, body] if style == "bar first" else [body, bar]), style


def _six(rng):
    style = rng.choice(["closed loop", "open loop", "big loop", "straight stem"])
    top = _j(rng, [[0.72, 0.0]], 0.03)[0]
    if style == "straight stem":
        stem = [top, _j(rng, [[0.2, 0.62]], 0.03)[0]]
    else:
        stem = [top, _j(rng, [[0.35, 0.2]], 0.03)[0], _j(rng, [[0.14, 0.58]], 0.03)[0]]
    r = rng.uniform(0.3, 0.34) if style == "big loop" else rng.uniform(0.24, 0.29)
    loop = _j(rng, [[0.2, 0.85], [0.48, 1.0], [0.2 + 2 * r, 0.82], [0.62, 1.08 - 2 * r],
                    [0.35, 1.05 - 2 * r]], 0.025)
    end = [[0.16, 0.66]] if style != "open loop" else [[0.28, 1.12 - 2 * r]]  # back to the stem, or short of it
    pts = np.vstack([stem, loop, _j(rng, end, 0.02)])
    return [spline(pts, 9)], style


def _seven(rng):
    style = rng.choice(["plain", "crossbar", "curved stem", "hooked top", "crossbar and curved stem"])
    left = _j(rng, [[0.08, 0.03]], 0.03)[0]
    corner = _j(rng, [[0.92, 0.02]], 0.03)[0]
    foot = _j(rng, [[rng.uniform(0.3, 0.5), 1.0]], 0.03)[0]
    if "curved" in style:
        mid = (corner + foot) / 2 + [rng.uniform(0.04, 0.1), 0.0]
        stem = spline([corner, mid, foot], 10)
    else:
        stem = line(corner, foot, 16)
    top = line(left, corner, 12)
    if style == "hooked top":  # a small down-tick before the bar
        top = join(line(left + [0.0, rng.uniform(0.12, 0.2)], left, 5), top[1:])
    strokes = [join(top, stem[1:])]
    if "crossbar" in style:
        y = rng.uniform(0.45, 0.58)
        x = corner[0] + (foot[0] - corner[0]) * (y - corner[1]) / (foot[1] - corner[1])
        half = rng.uniform(0.18, 0.3)
        strokes.append(line([x - half, y + rng.normal(0, 0.02)], [x + half, y + rng.normal(0, 0.02)], 8))
    return strokes, style


def _eight(rng):
    style = rng.choice(["one stroke", "one stroke", "two loops", "open top", "small top loop"])
    w_top = 0.22 if style == "small top loop" else rng.uniform(0.26, 0.34)
    waist = 0.42 if style == "small top loop" else rng.uniform(0.44, 0.52)
    if style == "two loops":
        top = arc(0.5, waist / 2, w_top, waist / 2, 90, 90 - 370, 40)
        bottom = arc(0.5, (1 + waist) / 2, 0.38, (1 - waist) / 2, -90, -90 + 370, 44)
        return [_j(rng, top, 0.008), _j(rng, bottom, 0.008)], style
    ctrl = [[0.5 + w_top, 0.12], [0.5, 0.0], [0.5 - w_top, 0.14], [0.45, waist - 0.06], [0.5, waist],
            [0.88, 0.72], [0.55, 1.0], [0.12, 0.8], [0.48, waist + 0.02], [0.5 + w_top, 0.22],
            [0.5 + w_top - 0.04, 0.08]]
    if style == "open top":  # stops before it reaches the start
        ctrl = ctrl[:-2] + [[0.5 + w_top * 0.7, 0.3]]
    return [spline(_j(rng, ctrl, 0.025), 9)], style


def _nine(rng):
    style = rng.choice(["straight tail", "curved tail", "open loop", "two strokes", "small loop"])
    r = 0.22 if style == "small loop" else rng.uniform(0.26, 0.34)
    cy = r + 0.01
    cx = 0.78 - r
    if style == "open loop":  # the pen starts below the top: the loop never closes
        loop = arc(cx, cy, r, cy, -20, -330, 40)
    else:
        loop = arc(cx, cy, r, cy, 5, -360, 44)
    loop = _j(rng, loop, 0.008)
    joint = loop[-1]
    if style == "curved tail":
        tail = spline(_j(rng, [joint, [0.8, 0.6], [0.62, 0.95], [0.3, 0.95]], 0.025), 8)
    else:
        tail = line(joint, _j(rng, [[0.74, 1.0]], 0.03)[0], 14)
    if style == "two strokes":
        stem_top = [loop[:, 0].max() + rng.normal(0, 0.02), rng.uniform(0.0, 0.1)]
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


def drawing(label: int, rng: np.random.Generator) -> Drawing:
    """One hand-drawn ``label``: a style, perturbed, slanted, scaled, placed, wobbled."""
    strokes, style = DESIGNS[label](rng)
    pts = np.vstack(strokes)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    strokes = [s - centre for s in strokes]  # the design's box centred on 0

    slant = float(rng.choice([rng.uniform(-20, 20), rng.uniform(0, 20), rng.normal(6, 5)]))
    slant = float(np.clip(slant, -20, 20))  # degrees, + = the top leans right
    rotation = float(rng.normal(0, 4))
    aspect = float(np.exp(rng.uniform(np.log(0.72), np.log(1.3))))  # width / height of the hand
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

    wobble = float(rng.choice([0.0, rng.uniform(0.5, 2.5), rng.uniform(2.5, 5.0)]))  # px, slow waver
    tremor = float(rng.uniform(0.0, 0.9))  # px, per point
    # the hand's speed: a slow hand gives the mouse a point every few pixels, a fast one
    # every 15-25 (the canvas joins them with straight pieces)
    spacing = float(rng.choice([rng.uniform(5, 9), rng.uniform(9, 15), rng.uniform(15, 25)]))
    steps = int(rng.integers(1, 4))
    result = []
    for p in out:
        p = _resample(p + offset, spacing)
        t = np.linspace(0, 1, len(p))
        for axis in range(2):
            f = rng.uniform(1, 3)
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
