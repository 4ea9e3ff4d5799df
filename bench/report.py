"""Write the results as Markdown (for people) and JSON (for tools) under bench/results/.

Why both: the table is what a reviewer reads; the JSON keeps every run (load average, noisy flag, check
outcome) so a surprising number can be traced back without re-running.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}{unit}" if v < 100 else f"{v:,.0f}{unit}"
    return f"{v:,}{unit}" if isinstance(v, int) else f"{v}{unit}"


def _ratio_cell(r: dict) -> str:
    if r["value"] is None:
        return "-"
    return f"{r['value']:.3g}"


def render_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    cfg = results["config"]
    lines = [
        "# Benchmark results"
        + (" (quick smoke run)" if cfg["quick"] else "")
        + (
            ""
            if results.get("complete", True)
            else " - PARTIAL: the run had not finished when this was written"
        ),
        "",
        f"- date: {m['date_utc']}, git {m['git_rev'] or '?'}, total {results.get('elapsed_s', '?')} s",
        f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['platform']}, "
        f"Python {m['python']}; load average at start {m['load_avg_at_start']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
        f"- settings: scale {cfg['scale']:g} (scale group {cfg['scales'][0]:g} vs {cfg['scales'][1]:g}), "
        f"{cfg['repeats']} repeat(s) interleaved A B C … then reversed, page size {cfg['page_size']}, "
        f"seed {cfg['seed']}",
        "- CPU = user+sys of the measured process tree; services CPU = what the five service processes "
        "spent meanwhile (the other side of every HTTP request).",
        "- every run is checked against the services' own SQLite data (row counts per endpoint and money "
        "sums); an invalid run is excluded from the numbers and listed. Noisy = the system was more than "
        "30 % busy in the 0.5 s before the run.",
    ]
    lines += [f"- note: {n}" for n in results.get("notes", [])]
    lines += [
        "",
        "## Targets",
        "",
        "| ratio | value | target | met | basis |",
        "|---|---|---|---|---|",
    ]
    all_ratios = [r for g in results["groups"].values() for r in g.get("ratios", [])]
    for r in all_ratios:
        met = {True: "yes", False: "**NO**", None: "n/a"}[r["met"]] if r["target"] != "info" else "info"
        basis = r["basis"] + (f" ({r['why_missing']})" if r["why_missing"] else "")
        lines.append(f"| {r['name']} | {_ratio_cell(r)} | {r['target']} | {met} | {basis} |")
    if results.get("fleets"):
        lines += ["", "## Fleets", ""]
        for s, f in results["fleets"].items():
            rows = ", ".join(f"{k} {v:,}" for k, v in f["rows"].items())
            lines.append(f"- scale {s}: started in {f['start_s']} s (incl. data generation); {rows}")
    for name, g in results["groups"].items():
        lines += ["", f"## {name}: {g['title']}", ""]
        if g.get("repeats"):
            lines += [f"{g['repeats']} repeat(s).", ""]
        if g["subjects"]:
            lines += [
                "| subject | valid/runs | wall median (min) s | CPU median s | services CPU s | "
                "peak RSS MB (max) | tree RSS MB | rows | rows/s | noisy |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for subj, st in g["subjects"].items():
                label = f"{subj}" + (f"<br><sub>{st['label']}</sub>" if st.get("label") else "")
                if not st["valid"]:
                    lines.append(f"| {label} | 0/{st['runs']} | invalid | | | | | | | {st['noisy']} |")
                    continue
                cells = [
                    label,
                    f"{st['valid']}/{st['runs']}",
                    f"{_fmt(st['wall_median_s'])} ({_fmt(st['wall_min_s'])})",
                    _fmt(st["cpu_median_s"]),
                    _fmt(st.get("services_cpu_median_s")),
                    f"{_fmt(st['maxrss_median_mb'])} ({_fmt(st['maxrss_max_mb'])})",
                    _fmt(st["tree_rss_peak_median_mb"]),
                    _fmt(st["rows"]),
                    _fmt(st["rows_per_s"]),
                    str(st["noisy"]),
                ]
                lines.append("| " + " | ".join(cells) + " |")
            bad = [(s, x) for s, st in g["subjects"].items() for x in st["invalid"]]
            if bad:
                lines += ["", "Invalid runs (excluded):"] + [f"- {s} {x}" for s, x in bad]
        for subj, why in g["unavailable"].items():
            lines.append(f"- **{subj}: not available:** {why}")
        for note in g["notes"]:
            lines.append(f"- note: {note}")
    if results["profiles"]:
        lines += ["", "## Where the time goes (profiles of missed targets)", ""]
        for p in results["profiles"]:
            if "error" in p:
                lines.append(f"- {p.get('ratio', '')}: {p['subject']}: profile failed: {p['error']}")
            else:
                sampled = p.get("sampled_s", p.get("samples"))  # older JSON: "samples" held seconds too
                lines.append(
                    f"- {p['ratio']}: `{p['subject']}` ({sampled} s sampled, {p['file']}): {p['where']}"
                )
    lines += ["", "## Availability of the measured parts", ""]
    lines += [f"- {k}: {v}" for k, v in results.get("availability", {}).items()]
    return "\n".join(lines) + "\n"


def write_reports(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """latest.md and latest.json in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "latest.md"
    js = out_dir / "latest.json"
    md.write_text(render_markdown(results))
    js.write_text(json.dumps(results, indent=1, default=str))
    return md, js
