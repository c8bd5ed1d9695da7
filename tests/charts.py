"""The Plotly charts an AppTest shows, decoded, so tests compare values, not JSON text.

A chart's ``proto.spec`` is JSON whose spelling depends on the encoder Plotly finds (with
orjson "×" stays "×"; without it Plotly writes "\\u00d7"), so a test that searched the text
would pass or fail with what happens to be installed. Decode it with these instead
(``array_values`` also decodes a chart's arrays read from a browser page).
"""

from __future__ import annotations

import base64
import json

import numpy as np


def chart_specs(at) -> list[dict]:
    """Every Plotly chart on the page, decoded, in page order."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def chart_title(spec: dict) -> str:
    """A decoded chart's title ('' when it has none)."""
    title = spec.get("layout", {}).get("title", {})
    return title.get("text", "") if isinstance(title, dict) else str(title)


def chart_titles(at) -> list[str]:
    """The title of every Plotly chart on the page, in page order."""
    return [chart_title(spec) for spec in chart_specs(at)]


def chart_by_title(at, starts_with: str) -> dict:
    """The one chart whose title starts with ``starts_with`` (fails, listing the titles
    there are, when there is none or more than one)."""
    specs = chart_specs(at)
    found = [spec for spec in specs if chart_title(spec).startswith(starts_with)]
    assert len(found) == 1, (f"expected one chart titled {starts_with!r}..., found {len(found)}; "
                             f"the titles: {[chart_title(s) for s in specs]}")
    return found[0]


def trace_names(spec: dict) -> list[str | None]:
    """The name of each trace of a decoded chart (None for an unnamed one)."""
    return [trace.get("name") for trace in spec.get("data", [])]


def heatmap_values(spec: dict, trace: int = 0) -> np.ndarray:
    """The z values of a decoded chart's heatmap trace (NumPy arrays travel as base64
    'bdata' with a dtype and a shape; lists as plain JSON)."""
    return array_values(spec["data"][trace]["z"])


def array_values(value) -> np.ndarray:
    """One array of a chart (a trace's x, y or z) as NumPy: Plotly's typed-array form
    ``{"dtype", "bdata", "shape"?}`` (base64 bytes), or a plain JSON list. The same in a
    decoded AppTest spec and in the ``data`` of a Plotly chart read from a browser page."""
    if isinstance(value, dict):
        values = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if value.get("shape") is not None:
            values = values.reshape(tuple(int(s) for s in str(value["shape"]).split(",")))
        return values
    return np.asarray(value, dtype=np.float64)
