"""Benchmark settings from the command line.

`python -m bench [--quick] [--scale …] [--repeats N] [--only …]`
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from core import settings

GROUPS = ("pull", "singer", "publish", "scale", "incremental", "stream", "cost")
REPO = settings.repo_root()


@dataclass
class BenchConfig:
    """Everything a run needs to know; `quick` trades scale and repeats for a few-minute smoke run."""

    quick: bool
    scale: float
    scales: tuple[float, float]
    repeats: int
    scale_repeats: int
    only: tuple[str, ...]
    seed: int
    page_size: int
    change_fraction: float
    out_dir: Path
    work: Path
    profile: bool
    build_singer: bool
    timeout: float
    notes: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    merge: bool = False

    @property
    def repo(self) -> Path:
        return REPO


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny scales, 1 repeat, reuse-only Singer peer")
    parser.add_argument(
        "--scale", type=float, default=None, help="scale of the side-by-side groups (default 1)"
    )
    parser.add_argument("--scales", default=None, help="the two scales of the scale group (default 1,10)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per subject (default 3; quick 1)")
    parser.add_argument(
        "--scale-repeats",
        type=int,
        default=None,
        help="runs per step in the scale group (default: --repeats); scale 10 is slow",
    )
    parser.add_argument("--only", default="", help=f"comma list of groups: {','.join(GROUPS)}")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--page-size",
        type=int,
        default=5000,
        help="page size for the peers; default 5000 = the loaders' default (extract/config.py)",
    )
    parser.add_argument("--change-fraction", type=float, default=0.01, help="share of records changed")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy profiles of missed targets")
    parser.add_argument("--build-singer", action="store_true", help="build the Meltano venv even in --quick")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a measured run is killed")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        help="leave out a subject by name (repeatable); the report lists it as skipped",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace only the groups run now in the existing latest.json (keep the others)",
    )
    parser.add_argument("--note", action="append", default=[], help="a line for the report (repeatable)")
    a = parser.parse_args(argv)
    only = tuple(g.strip() for g in a.only.split(",") if g.strip()) or GROUPS
    unknown = set(only) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    default_scales = "0.02,0.2" if a.quick else "1,10"
    s1, s10 = (float(x) for x in (a.scales or default_scales).split(","))
    return BenchConfig(
        quick=a.quick,
        scale=a.scale if a.scale is not None else (0.02 if a.quick else 1.0),
        scales=(s1, s10),
        repeats=a.repeats or (1 if a.quick else 3),
        scale_repeats=a.scale_repeats or a.repeats or (1 if a.quick else 3),
        only=only,
        seed=a.seed,
        page_size=a.page_size,
        change_fraction=a.change_fraction,
        # quick runs are smoke checks: their results stay out of the committed folder unless asked
        out_dir=a.out or (a.work / "results-quick" if a.quick else REPO / "bench" / "results"),
        work=a.work.resolve(),
        profile=not a.no_profile,
        build_singer=a.build_singer or not a.quick,
        timeout=a.timeout,
        notes=tuple(a.note),
        skip=tuple(a.skip),
        merge=a.merge,
    )
