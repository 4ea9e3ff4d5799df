"""The HTML around the figures: one self-contained page, plotly.js inlined once, no request at view time.

Why one file: it is published inside the version it describes and opened from the file system
(``file://``), mailed, or archived; a page that fetched a script from a CDN would show nothing
offline. Every number a reader may quote is also in the DOM as data (``data-value`` on the key
figures, plotly's own ``data`` on each chart), so a test can compare the rendered page with SQL.
The SQL behind each section is shown under it: what you see is what the query returns.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass
class Kpi:
    """A key figure: ``value`` is exact (Decimal/int) and goes into ``data-value`` unformatted."""

    key: str
    label: str
    value: Any
    kind: str = "int"  # usd | int | pct | text
    note: str = ""


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    """One figure or table with its title, what it shows, and the SQL it came from."""

    id: str
    title: str
    caption: str
    sql: list[str] = field(default_factory=list)
    figure: go.Figure | None = None
    table: Table | None = None
    empty: str | None = None  # shown instead of the figure when there is nothing to plot


@dataclass
class Page:
    """A part of the report (business, pipeline): a heading, key figures and sections."""

    id: str
    title: str
    intro: str
    kpis: list[Kpi] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


def fmt(value: Any, kind: str) -> str:
    """Human text for a value: ``$1,234.56``, ``1,234``, ``12.3 %``; an em dash for none."""
    if value is None:
        return "—"
    if kind == "usd":
        return f"${Decimal(value):,.2f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{float(value) * 100:.1f} %"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _kpis(kpis: list[Kpi]) -> str:
    cards = []
    for k in kpis:
        raw = "" if k.value is None else str(k.value)
        note = f'<div class="kpi-note">{_esc(k.note)}</div>' if k.note else ""
        cards.append(
            f'<div class="kpi"><div class="kpi-label">{_esc(k.label)}</div>'
            f'<div class="kpi-value" data-kpi="{_esc(k.key)}" data-value="{_esc(raw)}">'
            f"{_esc(fmt(k.value, k.kind))}</div>{note}</div>"
        )
    return f'<div class="kpis">{"".join(cards)}</div>' if cards else ""


def _table(table: Table, section_id: str) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>" for row in table.rows)
    table_id = f"table-{_esc(section_id)}"
    return f'<table class="data" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(s: Section) -> str:
    parts = [f'<section class="card" id="{_esc(s.id)}"><h3>{_esc(s.title)}</h3>']
    parts.append(f'<p class="caption">{_esc(s.caption)}</p>')
    if s.empty is not None:
        parts.append(f'<p class="empty" data-empty="{_esc(s.id)}">{_esc(s.empty)}</p>')
    if s.figure is not None and s.empty is None:
        parts.append(
            pio.to_html(
                s.figure,
                full_html=False,
                include_plotlyjs=False,
                div_id=f"fig-{s.id}",
                config=PLOTLY_CONFIG,
                default_width="100%",
            )
        )
    if s.table is not None:
        parts.append(_table(s.table, s.id))
    if s.sql:
        queries = "\n\n".join(q.strip() for q in s.sql)
        parts.append(f"<details><summary>SQL</summary><pre>{_esc(queries)}</pre></details>")
    parts.append("</section>")
    return "".join(parts)


CSS = """
:root { --fg: #1f2933; --muted: #52606d; --line: #d9e2ec; --bg: #f5f7fa; --accent: #2f6fdf; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       background: var(--bg); }
header { background: #102a43; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .meta { color: #bcccdc; font-size: 13px; }
nav { position: sticky; top: 0; z-index: 10; background: #fff; border-bottom: 1px solid var(--line);
      padding: 8px 28px; }
nav a { margin-right: 18px; color: var(--accent); text-decoration: none; font-weight: 600; }
main { padding: 8px 28px 40px; max-width: 1400px; margin: 0 auto; }
h2 { margin: 28px 0 6px; font-size: 20px; }
.intro { color: var(--muted); margin: 0 0 14px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px;
        margin: 12px 0; }
.kpi { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.kpi-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.kpi-value { font-size: 20px; font-weight: 650; margin-top: 2px; white-space: nowrap; }
.kpi-note { color: var(--muted); font-size: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px;
        margin: 14px 0; }
.card h3 { margin: 0 0 2px; font-size: 16px; }
.caption { color: var(--muted); margin: 0 0 6px; font-size: 13px; }
.empty { color: var(--muted); font-style: italic; }
table.data { border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 6px; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
                               vertical-align: top; }
table.data th { background: var(--bg); }
details { margin-top: 6px; font-size: 12px; color: var(--muted); }
details pre { white-space: pre-wrap; background: var(--bg); padding: 8px; border-radius: 6px; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 28px; max-width: 1400px; margin: 0 auto; }
"""


def render(title: str, meta: list[tuple[str, str]], pages: list[Page], footer: str) -> str:
    """The whole document: header with the version's facts, a nav bar, the pages, plotly.js inline."""
    nav = "".join(f'<a href="#page-{_esc(p.id)}">{_esc(p.title)}</a>' for p in pages)
    meta_text = " · ".join(f"{_esc(k)}: {_esc(v)}" for k, v in meta)
    body = []
    for p in pages:
        body.append(f'<div class="page" id="page-{_esc(p.id)}"><h2>{_esc(p.title)}</h2>')
        body.append(f'<p class="intro">{_esc(p.intro)}</p>{_kpis(p.kpis)}')
        body.extend(_section(s) for s in p.sections)
        body.append("</div>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
        "</head><body>"
        f'<header><h1>{_esc(title)}</h1><div class="meta">{meta_text}</div></header>'
        f"<nav>{nav}</nav><main>{''.join(body)}</main>"
        f"<footer>{_esc(footer)}</footer></body></html>\n"
    )
