"""``python -m elt``: the project's orchestration commands (what ``make elt``/``export``/``report``/``dbt``/
``docs``/``shell``/``lint`` run).

    python -m elt run [--sources A,B] [--allow-partial] [--no-services] [--full-refresh] [--full-build]
                      [--keep N] [--rotate-pii-key] [--accept-row-drop SCHEMA.TABLE ...]
    python -m elt export [--keep N] [--wait S] [--force] [--rotate-pii-key] [--list] [--verify]
                         [--rollback VERSION]
    python -m elt changes [--wait S]
    python -m elt dbt <dbt args...>
    python -m elt docs [dbt docs generate options]
    python -m elt shell [--exports] [-c SQL]
    python -m elt lint-sql [paths...]
    python -m elt repair-snapshot SNAPSHOT --since TIME [--dry-run]
    python -m elt stream [stream options]   (the events stream, elt/stream; docs/stream.md)
"""

from __future__ import annotations

import argparse
import errno
import logging
import shlex
import sys

if __name__ == "__main__" and sys.argv[1:2] == ["stream"]:
    # before the batch commands' imports: the stream has its own CLI, signals and logging (elt/stream)
    from elt.stream.__main__ import main as stream_main

    sys.exit(stream_main(sys.argv[2:]))

import duckdb

from core import file_modes as private
from core import lock, pii_key, settings, signals, steps, warehouse_check
from core.secrets import scrub
from elt import build_plan, build_state, flow, selection
from publish import partial, versions
from publish.publish import PublishError
from transform import dbt_artifacts, dbt_results, dbt_runner

log = logging.getLogger("elt")
EXIT_PARTIAL = 4  # `elt run --allow-partial` published a version without the sources that failed


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        sources = selection.parse(args.sources)  # a typo fails here, before the lock or any service
    except selection.SelectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.allow_partial and args.rotate_pii_key:  # carried marts hold hashes made with the old key
        print(
            f"error: {partial.FLAG} cannot be combined with {pii_key.ROTATE_FLAG}: marts carried from the"
            " current version were hashed with the old key; rotate in a complete run",
            file=sys.stderr,
        )
        return 2
    result = flow.run_flow(
        sources=sources,
        services=not args.no_services,
        full_refresh=args.full_refresh,
        keep=args.keep,
        rotate_pii_key=args.rotate_pii_key,
        accept_row_drop=args.accept_row_drop,
        allow_partial=args.allow_partial,
        full_build=args.full_build,
    )
    if result.interrupted:  # one line; the steps it ran are in ops.runs
        print(flow.format_summary(result).splitlines()[0], file=sys.stderr, flush=True)
        return result.interrupted.exit_code
    print(flow.format_summary(result), flush=True)
    if not result.ok and (line := warehouse_check.explain(result.error or "")) is not None:
        print(f"error: {line}", file=sys.stderr, flush=True)  # the step's error said why, this what to do
    if result.ok and result.partial:
        return EXIT_PARTIAL
    return 0 if result.ok else 1


def _cmd_export(args: argparse.Namespace) -> int:
    exports = settings.exports_dir()
    if args.list:
        current = versions.current_version_id(exports)
        for v in versions.list_versions(exports):
            print(("* " if v == current else "  ") + v)
        return 0
    if args.verify:
        from publish.verify import verify_version

        target = versions.resolve_current(exports)
        if target is None:
            print(f"nothing published under {exports}", file=sys.stderr)
            return 1
        problems = verify_version(target)
        for p in problems:
            print(f"{target.name}: {p}")
        print(f"{target.name}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 0 if not problems else 1
    if args.rollback:
        with lock.warehouse_lock(f"export --rollback {args.rollback}", wait=args.wait):
            versions.switch_current(exports, args.rollback)
        print(f"current -> versions/{args.rollback}")
        return 0
    # the flags that change what is published are in the recorded command (ops.runs)
    flags = [*(["--force"] if args.force else []), *([pii_key.ROTATE_FLAG] if args.rotate_pii_key else [])]
    command = " ".join(["python -m elt export", *flags])
    result = flow.run_publish(
        command, args.wait, args.keep, force=args.force, rotate_pii_key=args.rotate_pii_key
    )
    print(
        f"published version {result.version_id}: {len(result.marts)} marts, {result.rows:,} rows "
        f"in {result.seconds:.1f}s -> {exports / 'current'}"
    )
    for m in result.marts:
        print(f"  {m.name:<32} {m.rows:>10,} rows  {m.files:>4} file(s)")
    if "report" in result.attachments:
        report = result.version_dir / result.attachments["report"]["path"]
        print(f"  report: {report} (open file://{report})")
    return 0


def _cmd_dbt(args: argparse.Namespace) -> int:
    """dbt under the lock, recorded in ``ops.runs`` (step ``dbt``, the whole command line) unless the
    command never opens the warehouse. The flow's own dbt step is logged by the flow (run_dbt logs none)."""
    if not args.dbt_args:
        print("usage: python -m elt dbt <dbt arguments>, e.g. build --select marts", file=sys.stderr)
        return 2
    wait = flow.lock_wait()
    if dbt_runner.subcommand(args.dbt_args) in dbt_runner.NO_WAREHOUSE:  # parse, ls, ...: no row
        return dbt_runner.run_dbt(args.dbt_args, wait=wait).exit_code
    command = shlex.join(["python", "-m", "elt", "dbt", *args.dbt_args])  # scrubbed by new_run
    run = steps.new_run(command, "dbt")
    with steps.kept_if_unlocked(run), lock.warehouse_lock(f"dbt {' '.join(args.dbt_args)}", wait=wait):
        warehouse_check.check()  # before dbt: it would retry a damaged file's connection for minutes
        with steps.logged_step(command, "dbt", run) as rec:
            rec.inputs = [("raw_load", s, load_id) for s, load_id in sorted(steps.committed_loads().items())]
            outcome = dbt_runner.run_dbt(args.dbt_args, wait=wait)
            if outcome.summary:
                rec.rows = outcome.summary.models_built
                dbt_results.record(rec.run_id)
            if not outcome.ok:
                failures = outcome.summary.failures[:10] if outcome.summary else []
                rec.status = "failed"
                rec.error = "; ".join([f"dbt exited {outcome.exit_code}", *failures])
    return outcome.exit_code


def _cmd_changes(args: argparse.Namespace) -> int:
    """What the next ``elt run`` would do with what is loaded now: build (why, and the plan: the dbt
    selection of a changed-only build, elt/build_plan.py) or skip. Reads only."""
    if not settings.warehouse_path().exists():
        print(f"build: nothing loaded or built yet (no warehouse at {settings.warehouse_path()})")
        return 0
    _, decision = flow.check_changes("python -m elt changes", args.wait)
    if decision.build:
        print("build: " + decision.describe())
        plan = build_plan.plan(decision.changes)
        print(f"plan: {plan.why}" + ("" if plan.full else f" (dbt build {shlex.join(plan.dbt_args())})"))
    else:
        print("skip: " + decision.describe())
    return 0


def _cmd_docs(args: argparse.Namespace) -> int:
    """``dbt docs generate --static`` (as ``make dbt`` runs dbt: lock, run log), then the page made clean
    for ``file://`` (transform/docs_site.py)."""
    from transform import docs_site

    code = _cmd_dbt(argparse.Namespace(dbt_args=["docs", "generate", "--static", *args.dbt_args]))
    if code != 0:
        return code
    page = docs_site.finish(dbt_artifacts.target_dir())
    print(f"docs site: {page} (open file://{page}; or make docs-serve)")
    return 0


def _cmd_shell(args: argparse.Namespace) -> int:
    from elt import shell

    return shell.run(exports=args.exports, command=args.command)


def _cmd_lint_sql(args: argparse.Namespace) -> int:
    from transform import lint_sql

    return lint_sql.run(args.paths or None, wait=args.wait)


ROTATE_HELP = (
    "use a new PII key: the configured one if it differs from the published one, else a newly generated "
    "run/pii.key; every email_hash changes, and the manifest records the rotation"
)


def _cmd_repair_snapshot(args: argparse.Namespace) -> int:
    from transform import repair

    print(
        repair.repair_snapshot(
            args.snapshot, repair.parse_since(args.since), dry_run=args.dry_run, wait=args.wait
        )
    )
    if not args.dry_run:  # a table changed outside dbt: the next `elt run` builds (elt/build_state.py)
        build_state.forget()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m elt", description="the project's orchestration commands")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="services -> extract -> dbt build -> publish -> summary")
    p.add_argument(
        "--sources",
        metavar="A,B",
        help="load only these sources (comma-separated names of sources/*.yml); dbt builds as usual",
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="when some sources fail (and others load), still build and publish the marts that do not "
        "depend on them; the others are carried from the current version and the manifest marks the "
        f"version partial (exit {EXIT_PARTIAL}). Default: a failed source publishes nothing",
    )
    p.add_argument("--no-services", action="store_true", help="do not start/stop the local fleet")
    p.add_argument("--full-refresh", action="store_true", help="reload sources and rebuild incrementals")
    p.add_argument(
        build_state.FORCE_FLAG,
        action="store_true",
        help="build and publish even when nothing changed since the last successful run (default: such a "
        f"run skips dbt and publish; also {build_state.FORCE_ENV}=1)",
    )
    p.add_argument("--keep", type=int, default=versions.default_keep(), help="old export versions to keep")
    p.add_argument(pii_key.ROTATE_FLAG, action="store_true", help=ROTATE_HELP)
    p.add_argument(
        "--accept-row-drop",
        metavar="SCHEMA.TABLE",
        action="append",
        default=[],
        help="accept that this raw table lost rows since the last accepted build (the row drop guard, "
        "docs/operations.md); its counts become the new baseline. Repeat for several tables",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("export", help="publish the marts tagged 'publish' to exports/ as Parquet")
    p.add_argument(
        "--keep",
        type=int,
        default=versions.default_keep(),
        help="old versions to keep besides the current (3)",
    )
    p.add_argument("--wait", type=float, default=flow.lock_wait(), help="seconds to wait for the lock")
    p.add_argument("--force", action="store_true", help="publish even if the last dbt build failed")
    p.add_argument(
        pii_key.ROTATE_FLAG,
        action="store_true",
        help="publish marts built with a new PII key (every email_hash changes; the manifest records it)",
    )
    p.add_argument("--list", action="store_true", help="list published versions (* = current)")
    p.add_argument("--verify", action="store_true", help="check the current version against its manifest")
    p.add_argument("--rollback", metavar="VERSION", help="point current at an older kept version")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "changes", help="whether the next run would build (why, and what: its dbt selection) or skip"
    )
    p.add_argument("--wait", type=float, default=flow.lock_wait(), help="seconds to wait for the lock")
    p.set_defaults(func=_cmd_changes)

    p = sub.add_parser(
        "dbt", help="run dbt under the warehouse lock with the PII key set (args pass through)"
    )
    p.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_dbt)

    p = sub.add_parser("docs", help="the dbt docs site as one page that opens from a file (make docs)")
    p.add_argument("dbt_args", nargs=argparse.REMAINDER, help="more `dbt docs generate` options")
    p.set_defaults(func=_cmd_docs)

    p = sub.add_parser("shell", help="read-only SQL shell on the warehouse")
    p.add_argument("--exports", action="store_true", help="query the current published Parquet instead")
    p.add_argument("-c", dest="command", metavar="SQL", help="run one statement and exit")
    p.set_defaults(func=_cmd_shell)

    p = sub.add_parser("lint-sql", help="sqlfluff (dbt templater) over the dbt SQL")
    p.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the warehouse lock")
    p.add_argument("paths", nargs="*")
    p.set_defaults(func=_cmd_lint_sql)

    p = sub.add_parser(
        "repair-snapshot",
        help="mend an SCD2 snapshot closed by builds on a source that had lost rows (docs/operations.md)",
    )
    p.add_argument("snapshot", help="the snapshot's name, e.g. snap_customers")
    p.add_argument("--since", required=True, help="start of the first bad build (ISO 8601; UTC here)")
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    p.add_argument("--wait", type=float, default=flow.lock_wait(), help="seconds to wait for the lock")
    p.set_defaults(func=_cmd_repair_snapshot)
    return parser


def main(argv: list[str] | None = None) -> int:
    signals.install()  # SIGTERM / SIGINT: children stopped, rows closed as interrupted, exit 128+N
    _setup_logging()
    private.owner_only()  # warehouse, run folder and what dbt creates: owner-only (exports: their own mode)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dbt"]:  # everything after `dbt` belongs to dbt, options included
        args = argparse.Namespace(func=_cmd_dbt, dbt_args=argv[1:])
    elif argv[:1] == ["docs"] and not {"-h", "--help"} & set(argv[1:]):  # the same for `docs generate`
        args = argparse.Namespace(func=_cmd_docs, dbt_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        warehouse_check.tighten_private_paths()  # owner-only; a warehouse this user cannot read: one line
        return args.func(args)
    except signals.Interrupted as exc:
        print(f"python -m elt {argv[0] if argv else ''}: {exc}; its child processes stopped", file=sys.stderr)
        return exc.exit_code
    except lock.WarehouseBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 75  # EX_TEMPFAIL: try again later
    except (PublishError, dbt_artifacts.ArtifactError, RuntimeError) as exc:
        if (stop := signals.stop_behind(exc)) is not None:  # DuckDB reports our stop as "Query interrupted"
            print(
                f"python -m elt {argv[0] if argv else ''}: {stop}; its child processes stopped",
                file=sys.stderr,
            )
            return stop.exit_code
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, duckdb.Error) as exc:  # a missing file, a read-only or full warehouse folder
        if (line := warehouse_check.explain(exc)) is not None:  # a damaged or unreadable warehouse file
            print(f"error: {line}", file=sys.stderr)
            return 1
        hint = ""
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            hint = f" (warehouse {settings.warehouse_path()}): free space or make it writable, then re-run"
        print(f"error: {type(exc).__name__}: {scrub(str(exc))}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
