"""Run the benchmark: fleets up, groups measured interleaved, ratios checked, misses profiled, report out.

Why interleaved: A B C … then C B A on the next repeat spreads slow drifts (page cache, thermal, a
neighbour's job) over every subject instead of penalising whichever ran last.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import ratios as R
from bench import scenarios as S
from bench.checks import Check
from bench.config import BenchConfig, parse_args
from bench.fleet import fleet_unavailable, running_fleet
from bench.machine import machine_info
from bench.measure import Measurement, run_measured
from bench.profiling import profile
from bench.report import write_reports
from bench.singer import SingerEnv
from bench.stats import summarise
from bench.subjects import Group
from bench.truth import read_truth


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_group(group: Group, cfg: BenchConfig, out: Path, repeats: int) -> dict[str, Any]:
    """Set up, then run every chain `cfg.repeats` times, alternating direction; check every run."""
    runs: list[Measurement] = []
    if group.setup:
        try:
            group.setup()
        except Exception as exc:  # a failed set-up makes the whole group unmeasurable, said in the report
            for s in group.subjects:
                group.unavailable[s.name] = f"set-up failed: {exc}"
            group.subjects, group.chains = [], []
    chains = group.ordered_chains()
    for repeat in range(repeats):
        order = chains if repeat % 2 == 0 else list(reversed(chains))
        for chain in order:
            for subject in chain:
                runs.append(_one_run(subject, repeat, cfg, out))
    stats = {s.name: summarise([m for m in runs if m.subject == s.name]) for c in chains for s in c}
    for name, st in stats.items():
        st["label"] = next((s.label for c in chains for s in c if s.name == name), "")
    return {
        "title": group.title,
        "subjects": stats,
        "unavailable": group.unavailable,
        "notes": group.notes,
        "runs": [m.as_dict() for m in runs],
    }


def _one_run(subject, repeat: int, cfg: BenchConfig, out: Path) -> Measurement:
    try:
        if subject.prepare:
            subject.prepare()
    except Exception as exc:
        m = Measurement(subject.name, repeat, -1, 0, 0, 0, 0, 0, 0, False, False, 0, f"prepare failed: {exc}")
        log(f"  {subject.name} r{repeat}: prepare failed: {exc}")
        return m
    m = run_measured(
        subject.name, repeat, subject.cmd, subject.env, out, cfg.repo, cfg.timeout, subject.server_pids
    )
    try:
        check = subject.check(m)
    except Exception as exc:
        check = Check(False, 0, [f"check raised {type(exc).__name__}: {exc}"])
    m.ok = check.ok and m.returncode == 0
    m.rows = check.rows
    m.check = (
        check.summary() if m.returncode == 0 else f"exit {m.returncode}: " + " | ".join(m.stderr_tail[-2:])
    )
    flag = "ok" if m.ok else "INVALID"
    log(
        f"  {subject.name} r{repeat}: {m.wall_s:.2f}s wall, {m.cpu_s:.2f}s cpu, {m.maxrss_mb:.0f} MB, "
        f"{m.rows} rows → {flag}{' (noisy)' if m.noisy else ''} {'' if m.ok else m.check}"
    )
    return m


def _profile_misses(ratios: list[R.Ratio], group: Group, cfg: BenchConfig, results: dict) -> None:
    if not cfg.profile:
        return
    by_name = {s.name: s for c in group.ordered_chains() for s in c}
    missed: dict[str, list[str]] = {}  # subject → the ratios it missed (profile each subject once)
    for r in ratios:
        if r.met is False and r.profile_subject in by_name and by_name[r.profile_subject].profile:
            missed.setdefault(r.profile_subject, []).append(f"{r.name} {r.target}")
    for subject, names in missed.items():
        log(f"profiling {subject} (missed {'; '.join(names)})")
        try:
            prof = profile(by_name[subject], cfg.work / "profiles", cfg.repo, cfg.timeout)
        except Exception as exc:
            prof = {"subject": subject, "error": str(exc)}
        prof["ratio"] = "; ".join(names)
        prof["group"] = group.name
        results["profiles"].append(prof)


def _apply_skip(group: Group, skip: tuple[str, ...]) -> None:
    """Move subjects named in --skip to the group's unavailable list, so the report still shows them."""
    for s in [s for s in group.subjects if s.name in skip]:
        group.unavailable[s.name] = "skipped on request (--skip)"
    group.subjects = [s for s in group.subjects if s.name not in skip]
    group.chains = [[s for s in c if s.name not in skip] for c in group.chains]


def _measure(
    group: Group,
    ratio_fn,
    cfg: BenchConfig,
    results: dict,
    repeats: int | None = None,
    pids: list[int] | None = None,
) -> None:
    log(f"group {group.name}: {group.title}")
    _apply_skip(group, cfg.skip)
    for s in group.subjects:
        s.server_pids = s.server_pids or list(pids or [])
    res = run_group(group, cfg, cfg.work / "measure" / group.name, repeats or cfg.repeats)
    res["repeats"] = repeats or cfg.repeats
    ratios = ratio_fn(res["subjects"]) if ratio_fn else []
    res["ratios"] = [r.as_dict() for r in ratios]
    results["groups"][group.name] = res
    _profile_misses(ratios, group, cfg, results)
    # Partial results after every group: a long run that is stopped still leaves what it measured.
    results["complete"] = False
    write_reports(results, cfg.out_dir)


def _unavailable_everywhere(cfg: BenchConfig, why: str, results: dict) -> None:
    for name in cfg.only:
        results["groups"][name] = {
            "title": name,
            "subjects": {},
            "unavailable": {"all subjects": why},
            "notes": [],
            "runs": [],
            "ratios": [],
        }


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the fleets' `finally` stops the service processes (they run in
    their own session and would otherwise outlive the harness)."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    cfg = parse_args(argv)
    cfg.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "quick": cfg.quick,
            "scale": cfg.scale,
            "scales": list(cfg.scales),
            "repeats": cfg.repeats,
            "scale_repeats": cfg.scale_repeats,
            "only": list(cfg.only),
            "seed": cfg.seed,
            "page_size": cfg.page_size,
            "change_fraction": cfg.change_fraction,
        },
        "groups": {},
        "profiles": [],
        "fleets": {},
        "notes": list(cfg.notes),
    }
    started = time.perf_counter()
    # read the results to merge into now: the per-group partial writes below replace latest.json
    merge_base = _read_latest(cfg) if cfg.merge else None
    avail = S.availability(cfg)
    results["availability"] = {k: v or "available" for k, v in avail.items()}
    for k, v in avail.items():
        log(f"{k}: {v or 'available'}")

    singer = SingerEnv(cfg.work)
    singer_note = ""
    if "singer" in cfg.only:
        singer_note = _prepare_singer(singer, cfg)
        log(f"singer peer: {singer_note}")

    why = fleet_unavailable()
    if why:
        _unavailable_everywhere(cfg, why, results)
    else:
        _run_with_fleets(cfg, avail, singer, singer_note, results)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    results["complete"] = True
    elapsed = results["elapsed_s"]
    if merge_base is not None:
        results = _merge(results, merge_base)
    md, js = write_reports(results, cfg.out_dir)
    log(f"results → {md} and {js} ({elapsed}s)")
    return 0


def _read_latest(cfg: BenchConfig) -> dict | None:
    """The committed latest.json, or None when there is none (then a merge run simply writes its own)."""
    try:
        return json.loads((cfg.out_dir / "latest.json").read_text())
    except (OSError, ValueError):
        return None


def _merge(results: dict, base: dict) -> dict:
    """Put this run's groups into ``base`` (latest.json as it was when the run started); the earlier
    groups keep their own machine line."""
    ran = list(results["groups"])
    base["groups"].update(results["groups"])
    base["profiles"] = [p for p in base.get("profiles", []) if p.get("group") not in ran] + results[
        "profiles"
    ]
    base.setdefault("fleets", {}).update({f"{k} (merged run)": v for k, v in results["fleets"].items()})
    base.setdefault("notes", []).append(
        f"group(s) {', '.join(ran)} re-run and merged at {results['machine']['date_utc']} (git "
        f"{results['machine']['git_rev']}, load average at start {results['machine']['load_avg_at_start']}, "
        f"settings {results['config']})"
    )
    base.setdefault("merged", []).append({"machine": results["machine"], "config": results["config"]})
    base["availability"] = results["availability"]
    return base


def _prepare_singer(singer: SingerEnv, cfg: BenchConfig) -> str:
    log_path = cfg.work / "singer-build.log"
    if not cfg.build_singer:
        if singer.meltano_ready():
            return f"Meltano project reused from {singer.meltano_project}"
        if singer.ready():
            return f"plain Singer venv reused from {singer.venv} (meltano CLI not built)"
        return (
            "skipped in --quick: the Meltano venv is not built yet (a cold pip build takes minutes); "
            "run `python -m bench --only singer` once, or pass --build-singer"
        )
    ok, msg = singer.build_meltano(log_path)
    if ok:
        return "Meltano CLI: " + msg
    ok2, msg2 = singer.build(log_path)
    return f"meltano failed to build ({msg}); plain tap | target: {msg2}" if ok2 else f"{msg}; {msg2}"


def _run_with_fleets(
    cfg: BenchConfig, avail: dict, singer: SingerEnv, singer_note: str, results: dict
) -> None:
    main_groups = [g for g in ("pull", "singer", "publish") if g in cfg.only]
    with running_fleet(cfg.work, cfg.scale, cfg.seed) as fleet:
        truth = read_truth(fleet.data_dir)
        results["fleets"][f"{cfg.scale:g}"] = {
            "start_s": round(fleet.start_s, 1),
            "rows": truth.rows,
            "port_base": fleet.port_base,
        }
        log(
            f"fleet at scale {cfg.scale:g} up in {fleet.start_s:.1f}s on port base {fleet.port_base}: "
            f"{truth.total_rows} rows"
        )
        ctx = S.Context(cfg, fleet, f"s{cfg.scale:g}")
        if "pull" in main_groups:
            _measure(S.pull_group(ctx, avail), R.pull_ratios, cfg, results, pids=fleet.pids())
            elt_runs = [r for r in results["groups"]["pull"]["runs"] if r["subject"] == "elt run"]
            if elt_runs and all(r["ok"] for r in elt_runs):
                ctx.reusable.add("elt-run")  # its last run's warehouse and exports are this fleet's
        if "singer" in main_groups:
            _measure(
                S.singer_group(ctx, avail, singer, singer_note),
                R.singer_ratios,
                cfg,
                results,
                pids=fleet.pids(),
            )
        if "publish" in main_groups:
            _measure(S.publish_group(ctx, avail), R.publish_ratios, cfg, results, pids=fleet.pids())
        if "scale" in cfg.only:
            _scale_group(cfg, avail, ctx, results)
        # last: the simulator mutates this fleet's data
        if "stream" in cfg.only:
            latency: dict[str, list[float]] = {}
            _measure(
                S.stream_group(ctx, avail, latency),
                lambda st: R.stream_ratios(latency),
                cfg,
                results,
                pids=fleet.pids(),
            )
        if "incremental" in cfg.only:
            _measure(S.incremental_group(ctx, avail), R.incremental_ratios, cfg, results, pids=fleet.pids())
        if "cost" in cfg.only:  # last: its own simulator changes come after every other group's
            from bench import cost

            metrics: dict[str, dict[str, list]] = {}
            scale = ctx.fleet.scale
            _measure(
                cost.cost_group(ctx, avail, metrics),
                lambda st: cost.cost_ratios(st, metrics, scale),
                cfg,
                results,
                pids=fleet.pids(),
            )


def _scale_group(cfg: BenchConfig, avail: dict, main_ctx: S.Context, results: dict) -> None:
    """Both scales' fleets up at once, so their chains can be interleaved; the main fleet is reused."""
    small, big = cfg.scales
    group = Group(
        "scale", f"Scale {small:g} vs scale {big:g}: extract, dbt build, publish, incremental extract"
    )
    with contextlib.ExitStack() as stack:
        contexts = []
        for s in (small, big):
            if s == main_ctx.fleet.scale:
                contexts.append(main_ctx)
                continue
            fleet = stack.enter_context(running_fleet(cfg.work, s, cfg.seed))
            results["fleets"][f"{s:g}"] = {
                "start_s": round(fleet.start_s, 1),
                "rows": read_truth(fleet.data_dir).rows,
                "port_base": fleet.port_base,
            }
            log(f"fleet at scale {s:g} up in {fleet.start_s:.1f}s on port base {fleet.port_base}")
            contexts.append(S.Context(cfg, fleet, f"scale-{s:g}"))
        for ctx in contexts:
            chain, missing = S.scale_chain(ctx, avail, group.notes)
            for s in chain:
                s.server_pids = ctx.fleet.pids()
            group.unavailable.update(missing)
            group.chains.append(chain)
            group.subjects.extend(chain)
        _measure(group, lambda st: R.scale_ratios(st, small, big), cfg, results, cfg.scale_repeats)
