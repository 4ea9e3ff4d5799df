"""Profile a command whose target was missed, and say in one line where its time goes.

Why: a missed target without a bottleneck is just a number. py-spy (dev group) samples the real process
without changing its code; the speedscope file stays under bench/work/ for a closer look, and the top
self-time frames and packages go into the report.
"""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.subjects import Subject


def py_spy() -> str | None:
    """Path of py-spy next to the project's interpreter, or on PATH."""
    import sys

    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def profile(subject: Subject, out_dir: Path, cwd: Path, timeout: float) -> dict[str, Any]:
    """Run the subject once under `py-spy record` (unmeasured) and summarise the samples."""
    spy = py_spy()
    if not spy:
        return {"subject": subject.name, "error": "py-spy not installed (dev group)"}
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{subject.name.replace(' ', '_').replace('/', '_')}.speedscope.json"
    if subject.prepare:
        subject.prepare()
    cmd = [
        spy,
        "record",
        "--subprocesses",
        "--rate",
        "50",
        "--format",
        "speedscope",
        "-o",
        str(out),
        "--",
        *subject.cmd,
    ]
    proc = subprocess.run(
        cmd, env=subject.env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
        return {"subject": subject.name, "error": f"py-spy produced no profile: {' | '.join(tail)}"}
    summary = summarise_speedscope(out)
    summary.update({"subject": subject.name, "file": str(out)})
    return summary


def _package(path: str) -> str:
    """'…/site-packages/dlt/normalize/x.py' → 'dlt'; project files → their top folder."""
    if "importlib" in path:
        return "module imports"
    if path.startswith("<frozen"):
        return "stdlib"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/lib/python3" in path:
        return "stdlib"
    parts = Path(path).parts
    for top in ("core", "extract", "transform", "publish", "elt", "services", "bench"):
        if top in parts:
            return top
    return parts[-1] if parts else path


def summarise_speedscope(path: Path, top: int = 6) -> dict[str, Any]:
    """Self-time share of the hottest frames and packages, over all sampled threads/processes."""
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]
    by_frame: collections.Counter[int] = collections.Counter()
    by_pkg: collections.Counter[str] = collections.Counter()
    total = 0.0
    for prof in doc.get("profiles", []):
        if prof.get("type") != "sampled":
            continue
        for stack, weight in zip(prof["samples"], prof["weights"], strict=False):
            if not stack:
                continue
            leaf = stack[-1]
            by_frame[leaf] += weight
            by_pkg[_package(frames[leaf].get("file", ""))] += weight
            total += weight
    if not total:
        return {"where": "no samples"}

    def name(i: int) -> str:
        f = frames[i]
        return f"{f.get('name')} ({Path(f.get('file', '?')).name}:{f.get('line', '?')})"

    hot = [(name(i), round(100 * w / total, 1)) for i, w in by_frame.most_common(top)]
    pkgs = [(p, round(100 * w / total, 1)) for p, w in by_pkg.most_common(top)]
    where = "self time by package: " + ", ".join(f"{p} {s}%" for p, s in pkgs)
    where += "; hottest frames: " + ", ".join(f"{n} {s}%" for n, s in hot[:3])
    # py-spy's speedscope weights are seconds (1/rate per sample), so the total is seconds sampled
    return {"where": where, "hot_frames": hot, "packages": pkgs, "sampled_s": round(total, 1)}
