"""A small document model that renders to one self-contained HTML file and to Markdown.

A :class:`Report` is a list of blocks (headings, paragraphs, notes, tables, figures, key-value
lists). :meth:`Report.to_html` embeds every figure as a base64 PNG and every style inline, so the
HTML file opens anywhere without network access; :meth:`Report.to_markdown` writes the figures
next to the Markdown file.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog._util import write_bytes, write_text

__all__ = ["Report", "figure_to_png"]

_STYLE = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
color:#1f2328;background:#fff;line-height:1.5}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:1.9em;margin:.2em 0 .1em}
h2{font-size:1.45em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.15em;margin-top:1.4em}
.subtitle{color:#57606a;margin:0 0 1em}
.note{border-left:4px solid #0969da;background:#ddf4ff;padding:.6em 1em;margin:1em 0;
border-radius:4px}
.note.warning{border-color:#bf8700;background:#fff8c5}
.note.error{border-color:#cf222e;background:#ffebe9}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:4px 9px;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f6f8fa}
td.idx,th.idx{text-align:left;font-weight:600}
.caption{font-weight:600;margin:1.2em 0 .3em}
figure{margin:1em 0 1.6em}
figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{color:#57606a;font-size:.9em;margin-top:.3em}
nav.toc{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.6em 1.2em;
margin:1em 0}
nav.toc ul{margin:.2em 0;padding-left:1.2em}
code{background:#f6f8fa;padding:.1em .3em;border-radius:3px;font-size:.92em}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:.6em 0 1.2em}
dl.kv dt{font-weight:600}
dl.kv dd{margin:0;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
.tablewrap{overflow-x:auto}
"""


def figure_to_png(fig: Any, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it.

    Parameters
    ----------
    fig
        A :class:`matplotlib.figure.Figure`.
    dpi
        Resolution of the PNG.

    Returns
    -------
    bytes
        The PNG file's content.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "section"


def _inline_html(text: str) -> str:
    """Escape text, then render ``code`` spans and **bold**."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return out


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


@dataclass
class _Block:
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)


class Report:
    """A report made of headings, text, notes, tables and figures.

    Parameters
    ----------
    title
        The document's title.
    subtitle
        One line under the title (e.g. what was run and when).

    Examples
    --------
    >>> import pandas as pd
    >>> from ichprog.report import Report
    >>> rep = Report("Demo")
    >>> rep.heading("Results")
    >>> rep.table(pd.DataFrame({"AUC": [0.8]}, index=["LR"]), caption="Table 1")
    >>> "<table" in rep.to_html()
    True
    """

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.blocks: list[_Block] = []
        self._figure_names: set[str] = set()

    # -- building --------------------------------------------------------------------------------
    def heading(self, text: str, level: int = 2) -> None:
        """Add a section heading (level 2 or 3; level-2 headings make the table of contents)."""
        if level not in (2, 3):
            raise ValueError(f"heading level must be 2 or 3, got {level}")
        self.blocks.append(_Block("heading", {"text": text, "level": level}))

    def text(self, text: str) -> None:
        """Add a paragraph. Inline `` `code` `` and ``**bold**`` are rendered; nothing else is."""
        self.blocks.append(_Block("text", {"text": text}))

    def bullets(self, items: Sequence[str]) -> None:
        """Add a bulleted list (same inline markup as :meth:`text`)."""
        self.blocks.append(_Block("bullets", {"items": [str(i) for i in items]}))

    def note(self, text: str, kind: str = "info") -> None:
        """Add a highlighted note; ``kind`` is ``"info"``, ``"warning"`` or ``"error"``."""
        if kind not in ("info", "warning", "error"):
            raise ValueError(f"note kind must be info, warning or error, got {kind!r}")
        self.blocks.append(_Block("note", {"text": text, "kind": kind}))

    def table(self, df: pd.DataFrame, caption: str = "", index: bool = True,
              float_format: str = "{:.3f}") -> None:
        """Add a table.

        Parameters
        ----------
        df
            The table; its index is shown as the first column when ``index`` is true.
        caption
            Shown above the table.
        index
            Whether to show the index.
        float_format
            Format of float cells (strings are shown as they are).
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Report.table expects a pandas DataFrame, got {type(df).__name__}")
        self.blocks.append(_Block("table", {"df": df.copy(), "caption": caption, "index": index,
                                            "float_format": float_format}))

    def figure(self, fig: Any, caption: str = "", name: str | None = None) -> str:
        """Add a figure: a matplotlib figure (closed after rendering), PNG bytes or a PNG path.

        Returns the file name the figure gets in the Markdown version.
        """
        if isinstance(fig, (str, Path)):
            path = Path(fig)
            if not path.is_file():
                raise FileNotFoundError(f"figure file {path} does not exist")
            png = path.read_bytes()
            stem = name or path.stem
        elif isinstance(fig, (bytes, bytearray)):
            png = bytes(fig)
            stem = name or "figure"
        else:
            png = figure_to_png(fig)
            stem = name or "figure"
        if not png.startswith(b"\x89PNG"):
            raise ValueError(f"figure {stem!r} is not a PNG image")
        stem = _slug(stem)
        candidate, k = stem, 1
        while candidate in self._figure_names:
            k += 1
            candidate = f"{stem}-{k}"
        self._figure_names.add(candidate)
        fname = f"{candidate}.png"
        self.blocks.append(_Block("figure", {"png": png, "caption": caption, "name": fname}))
        return fname

    def key_values(self, items: Mapping[str, Any], caption: str = "") -> None:
        """Add a two-column list of names and values (e.g. what was run)."""
        self.blocks.append(_Block("kv", {"items": {str(k): str(v) for k, v in items.items()},
                                         "caption": caption}))

    # -- rendering --------------------------------------------------------------------------------
    @staticmethod
    def _format(value: Any, float_format: str) -> str:
        if isinstance(value, np.integer):
            return str(int(value))
        if isinstance(value, (float, np.floating)):
            value = float(value)
            if value != value:  # NaN
                return "n/a"
            return float_format.format(value)
        return str(value)

    def _cell_html(self, value: Any, float_format: str) -> str:
        text = self._format(value, float_format)
        numeric = isinstance(value, (int, float)) or bool(re.match(r"^-?\d", text)) or text == "n/a"
        cls = ' class="num"' if numeric else ""
        return f"<td{cls}>{html.escape(text)}</td>"

    def _table_html(self, p: dict[str, Any]) -> str:
        df: pd.DataFrame = p["df"]
        ff = p["float_format"]
        parts = []
        if p["caption"]:
            parts.append(f'<p class="caption">{_inline_html(p["caption"])}</p>')
        parts.append('<div class="tablewrap"><table>')
        head = ['<th class="idx">' + html.escape(str(df.index.name or "")) + "</th>"] if p["index"] else []
        head += [f"<th>{html.escape(str(c))}</th>" for c in df.columns]
        parts.append("<thead><tr>" + "".join(head) + "</tr></thead><tbody>")
        for idx, *values in df.astype(object).itertuples(name=None):
            cells = [f'<td class="idx">{html.escape(str(idx))}</td>'] if p["index"] else []
            cells += [self._cell_html(v, ff) for v in values]
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table></div>")
        return "".join(parts)

    def to_html(self) -> str:
        """The report as one self-contained HTML document (figures embedded as base64 PNG)."""
        body: list[str] = []
        toc: list[tuple[str, str]] = []
        used: set[str] = set()
        for b in self.blocks:
            p = b.payload
            if b.kind == "heading":
                anchor = base = _slug(p["text"])
                k = 1
                while anchor in used:
                    k += 1
                    anchor = f"{base}-{k}"
                used.add(anchor)
                if p["level"] == 2:
                    toc.append((anchor, p["text"]))
                lvl = p["level"]
                body.append(f'<h{lvl} id="{anchor}">{html.escape(p["text"])}</h{lvl}>')
            elif b.kind == "text":
                body.append(f"<p>{_inline_html(p['text'])}</p>")
            elif b.kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in p["items"])
                            + "</ul>")
            elif b.kind == "note":
                body.append(f'<div class="note {p["kind"]}">{_inline_html(p["text"])}</div>')
            elif b.kind == "table":
                body.append(self._table_html(p))
            elif b.kind == "figure":
                data = base64.b64encode(p["png"]).decode("ascii")
                cap = f"<figcaption>{_inline_html(p['caption'])}</figcaption>" if p["caption"] else ""
                alt = html.escape(p["caption"] or p["name"], quote=True)
                body.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}'
                            "</figure>")
            elif b.kind == "kv":
                cap = f"<h3>{html.escape(p['caption'])}</h3>" if p["caption"] else ""
                rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                               for k, v in p["items"].items())
                body.append(f'{cap}<dl class="kv">{rows}</dl>')
        nav = ""
        if toc:
            nav = ('<nav class="toc"><strong>Contents</strong><ul>'
                   + "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in toc)
                   + "</ul></nav>")
        sub = f'<p class="subtitle">{_inline_html(self.subtitle)}</p>' if self.subtitle else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body><main><h1>{html.escape(self.title)}</h1>{sub}{nav}"
            + "\n".join(body) + "</main></body></html>\n"
        )

    def to_markdown(self, figure_dir: str = "figures") -> str:
        """The report as Markdown; figures are referenced as ``figure_dir/<name>.png``.

        Use :meth:`save` to write the figures as well.
        """
        out = [f"# {self.title}", ""]
        if self.subtitle:
            out += [f"*{self.subtitle}*", ""]
        for b in self.blocks:
            p = b.payload
            if b.kind == "heading":
                out += ["#" * p["level"] + " " + p["text"], ""]
            elif b.kind == "text":
                out += [p["text"], ""]
            elif b.kind == "bullets":
                out += [f"- {i}" for i in p["items"]] + [""]
            elif b.kind == "note":
                out += ["> **" + p["kind"].capitalize() + ":** " + p["text"], ""]
            elif b.kind == "table":
                df: pd.DataFrame = p["df"]
                if p["caption"]:
                    out += [f"**{p['caption']}**", ""]
                cols = ([str(df.index.name or "")] if p["index"] else []) + [str(c) for c in df.columns]
                out.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
                out.append("|" + "|".join(["---"] * len(cols)) + "|")
                for idx, *values in df.astype(object).itertuples(name=None):
                    cells = ([str(idx)] if p["index"] else []) + [
                        self._format(v, p["float_format"]) for v in values]
                    out.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
                out.append("")
            elif b.kind == "figure":
                out += [f"![{p['caption'] or p['name']}]({figure_dir}/{p['name']})", ""]
                if p["caption"]:
                    out += [f"*{p['caption']}*", ""]
            elif b.kind == "kv":
                if p["caption"]:
                    out += [f"**{p['caption']}**", ""]
                out += [f"- **{k}:** `{v}`" for k, v in p["items"].items()] + [""]
        return "\n".join(out).rstrip() + "\n"

    def save(self, out_dir: str | Path, stem: str = "report") -> dict[str, Path]:
        """Write ``<stem>.html``, ``<stem>.md`` and the Markdown's PNGs under ``figures/``.

        Parameters
        ----------
        out_dir
            Folder to write to (created if missing).
        stem
            File name without extension.

        Returns
        -------
        dict
            Paths of what was written: ``{"html": ..., "markdown": ..., "figures": ...}``.
        """
        out = Path(out_dir)
        fig_dir = out / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        for b in self.blocks:
            if b.kind == "figure":
                write_bytes(fig_dir / b.payload["name"], b.payload["png"], fsync=False)
        html_path = out / f"{stem}.html"
        md_path = out / f"{stem}.md"
        # each file is replaced atomically: an interrupted save leaves the previous report
        html = self.to_html()
        markdown = self.to_markdown("figures")
        write_text(html_path, html)
        write_text(md_path, markdown)
        return {"html": html_path, "markdown": md_path, "figures": fig_dir}
