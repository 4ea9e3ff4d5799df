"""The import graph points one way between the embedded services and the pipeline, and from the
orchestrator down to the pipeline (run by ``make lint``).

``services/`` is the shop's own source systems: the test peer and the default, never the product. It
imports nothing of the pipeline (``elt``, ``extract``, ``bench``), and the pipeline imports nothing of
it: a team running the loaders against its own services must not need the shop's code, and the flow
reaches the fleet only through its command line (``python -m services use/release/ports``,
elt/fleet.py). The report (``report/``) is a consumer of the exports: it reads published versions and
the warehouse's ops tables, never the loaders or the shop. The benchmark and the tests sit on top and
may use everything.

Read from the source with ``ast`` (every ``import`` and absolute ``from … import``, function-local ones
included), so a lazy import inside a function cannot slip through.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# package -> top-level packages of this repo it must never import. The orchestrator (orchestration/) is a
# flow on top: it imports the pipeline's public pieces, and nothing below it imports it.
FORBIDDEN = {
    "services": {"elt", "extract", "orchestration", "report", "bench", "tests"},
    "elt": {"services", "orchestration", "bench", "tests"},
    "extract": {"services", "orchestration", "report", "bench", "tests"},
    "orchestration": {"services", "bench", "tests"},
    # the report reads a published version and the warehouse's ops tables: never the loaders or the shop
    "report": {"services", "extract", "orchestration", "bench", "tests"},
}


def imported_packages(package: str, root: Path = REPO) -> list[tuple[str, int, str]]:
    """(file, line, top-level package) of every absolute import in ``package``'s modules."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(path.relative_to(root).as_posix(), node.lineno, n.split(".")[0]) for n in names]
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_the_wrong_way(package: str) -> None:
    modules = imported_packages(package)
    assert modules, f"no imports found under {package}/: the check reads nothing"
    wrong = [f"{f}:{line} imports {top}" for f, line, top in modules if top in FORBIDDEN[package]]
    assert not wrong, "imports across the services/pipeline boundary:\n" + "\n".join(wrong)


def test_the_check_sees_a_function_local_import(tmp_path: Path) -> None:
    """The reader catches the kind of import that used to cross the line (inside a function)."""
    (tmp_path / "extract").mkdir()
    (tmp_path / "extract" / "m.py").write_text("def f():\n    from services.common import tls\n")
    assert imported_packages("extract", tmp_path) == [("extract/m.py", 2, "services")]


@pytest.mark.parametrize("package", ["elt", "extract", "services"])
def test_a_lower_layer_importing_the_orchestrator_is_caught(package: str, tmp_path: Path) -> None:
    """The loaders, the flow and the services may not reach up into the orchestrator, even lazily."""
    (tmp_path / package).mkdir()
    (tmp_path / package / "m.py").write_text("def f():\n    from orchestration import definitions\n")
    found = imported_packages(package, tmp_path)
    assert found == [(f"{package}/m.py", 2, "orchestration")]
    assert found[0][2] in FORBIDDEN[package]
