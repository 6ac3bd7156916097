"""HTML pieces for the rich displays (``_repr_html_``) of cohorts, models and results in Jupyter.

Private to the library. Standard library only at import time; pandas and matplotlib are used
by the callers' objects and imported lazily here. Every piece is self-contained HTML (inline
styles, figures as base64 PNG), so a saved notebook shows it anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping
from typing import Any

_BOX = ("font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 13px; "
        "border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px; margin: 4px 0; "
        "max-width: 980px")
_BADGE = {
    "warn": "background: #fff3cd; color: #664d03; border: 1px solid #ffda6a",
    "ok": "background: #d1e7dd; color: #0f5132; border: 1px solid #a3cfbb",
    "info": "background: #e7f1ff; color: #084298; border: 1px solid #9ec5fe",
}


def esc(value: Any) -> str:
    """``value`` as escaped HTML text."""
    return html.escape(str(value))


def badge(text: str, level: str = "warn") -> str:
    """A coloured label: ``"warn"``, ``"ok"`` or ``"info"``."""
    style = _BADGE.get(level, _BADGE["info"])
    return (f'<span style="{style}; border-radius: 4px; padding: 1px 6px; '
            f'display: inline-block; margin: 2px 0">{esc(text)}</span>')


def facts(items: Mapping[str, Any]) -> str:
    """A compact two-column table of ``{label: value}`` (``None`` values left out)."""
    rows = "".join(f'<tr><th style="text-align: left; padding-right: 12px; font-weight: 600">'
                   f"{esc(k)}</th><td>{esc(v)}</td></tr>"
                   for k, v in items.items() if v is not None)
    return f'<table style="border-collapse: collapse; margin: 4px 0">{rows}</table>'


def frame(df: Any, max_rows: int = 40) -> str:
    """A pandas object as an HTML table (the first ``max_rows`` rows)."""
    shown = df.head(max_rows) if len(df) > max_rows else df
    out: str = shown.to_html(border=0, na_rep="", max_rows=max_rows)
    if len(df) > max_rows:
        out += f"<p><i>first {max_rows} of {len(df)} rows</i></p>"
    return out


def figure(fig: Any, dpi: int = 80) -> str:
    """A matplotlib figure as an inline PNG (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # a Figure built without pyplot is simply dropped
        pass
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img style="max-width: 100%" src="data:image/png;base64,{data}"/>'


def bars(counts: Mapping[Any, int], title: str, width_px: int = 160) -> str:
    """A small horizontal bar chart of ``{label: count}`` in plain HTML."""
    total = sum(int(v) for v in counts.values()) or 1
    top = max((int(v) for v in counts.values()), default=0) or 1
    rows = []
    for label, n in counts.items():
        w = int(round(width_px * int(n) / top))
        rows.append(
            f'<tr><td style="text-align: right; padding-right: 6px">{esc(label)}</td>'
            f'<td><div style="background: #6c8ebf; height: 10px; width: {w}px; '
            f'display: inline-block"></div> <span style="color: #555">{int(n)} '
            f"({100 * int(n) / total:.0f} %)</span></td></tr>")
    return (f'<div style="display: inline-block; vertical-align: top; margin-right: 24px">'
            f'<div style="font-weight: 600">{esc(title)}</div>'
            f'<table style="border-collapse: collapse; line-height: 1.1">{"".join(rows)}'
            "</table></div>")


def panel(title: str, parts: Iterable[str]) -> str:
    """A bordered box with a bold title over the given HTML parts."""
    body = "".join(parts)
    return (f'<div style="{_BOX}"><div style="font-weight: 700; font-size: 14px; '
            f'margin-bottom: 4px">{esc(title)}</div>{body}</div>')
