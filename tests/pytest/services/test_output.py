"""What the generator and the simulator print: progress a person can follow, nothing a log cannot hold.

Real processes on real files: ``python -m services.generator`` with stderr on a pipe (plain lines per
stage and per tenth of it) and on a pseudo-terminal (one redrawn bar instead), and ``python -m
services.simulator --steps`` on the generated data (one line, unless ``--detail`` or ``--json``).
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pytest.support.paths import REPO

SCALE = "0.01"  # 100 customers, 500 orders: a few seconds
ESC = "\x1b"


def _cmd(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One generation with stderr on a pipe: its data dir and what it printed."""
    data = tmp_path_factory.mktemp("out-gen") / "data"
    proc = subprocess.run(
        _cmd("services.generator", "--data-dir", str(data), "--scale", SCALE, "--seed", "5"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, proc


def test_generator_prints_a_line_per_stage_and_tenth_with_counts_and_totals(generated) -> None:
    _, proc = generated
    err = proc.stderr
    assert ESC not in err and "\r" not in err, "a pipe gets plain lines: no bar, no escape codes"
    days = [int(d) for d in re.findall(r"orders, payments and events: (\d+)/730 days \(\d+ %\)", err)]
    assert days == [73 * k for k in range(1, 10)], days  # a line per tenth of the day loop, with its total
    day_line = next(line for line in err.splitlines() if "/730 days" in line)
    assert re.search(r"\d[\d,]* orders, \d[\d,]* payments, \d[\d,]* refunds, \d[\d,]* events", day_line)
    customers = re.findall(r"customers: (\d+)/100 customers", err)
    assert customers == [str(10 * k) for k in range(1, 10)], customers
    for stage in ("customers", "catalog", "orders, payments and events", "indexing and moving into place"):
        assert re.search(rf"generator: {stage} done: .* in \d+\.\d s", err), f"no closing line for {stage}"
    assert re.search(r"generator: indexing and moving into place: \d/5 files", err)
    assert "generated scale 0.01 seed 5" in err  # the closing summary is still there


def test_generator_draws_a_bar_on_a_terminal_instead_of_lines(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        _cmd("services.generator", "--data-dir", str(tmp_path / "data"), "--scale", SCALE, "--seed", "5"),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert re.search(r"\rgenerator: \[[#.]{24}\] orders, payments and events: \d+/730 days", shown), shown[
        -2000:
    ]
    assert ESC not in shown, "the bar is redrawn with a carriage return, not escape codes"
    assert not re.search(r"INFO generator: orders, payments and events: \d+/730", shown), "no plain lines too"
    assert "generator: orders, payments and events done:" in shown  # each stage still closes with a line


def test_simulate_steps_prints_one_line(generated) -> None:
    data, _ = generated
    proc = subprocess.run(
        _cmd("services.simulator", "--data-dir", str(data), "--steps", "300", "--seed", "2"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    assert len(lines) == 1, lines[:3]
    line = lines[0]
    assert re.fullmatch(
        r"simulator: 300 changes \(steps \d+-\d+\) to .+ in \d+\.\d\d s: [a-z_]+ \d+.*", line
    ), line
    counts = [int(n) for n in re.findall(r"\b[a-z_]+ (\d+)(?:,|;|$)", line.split(": ", 2)[2])]
    assert sum(counts) == 300, line  # every change counted, by kind
    assert len(line) < 400, f"{len(line)} characters: one line a person can read"


def test_simulate_detail_and_json(generated) -> None:
    data, _ = generated
    detail = subprocess.run(
        _cmd(
            "services.simulator",
            "--data-dir",
            str(data),
            "--steps",
            "100",
            "--detail",
            "--late-commit-share",
            "0.2",
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert detail.returncode == 0, detail.stderr[-2000:]
    out = detail.stdout.splitlines()
    assert out[0].startswith("simulator: 100 changes") and "late commits" in out[0]
    assert any(re.fullmatch(r"  orders: \d+ created, \d+ touched", line) for line in out[1:]), out
    assert any(line.startswith("  late commit: step ") for line in out[1:]), out
    both = subprocess.run(
        _cmd("services.simulator", "--data-dir", str(data), "--steps", "1", "--detail", "--json"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
