"""The import graph points one way (run by ``make lint``): each package imports only the layers below it.

::

    bench, tests                      on top: may use everything
    orchestration                     the Dagster flow        → elt, report, publish, transform, extract, core
    report                            a consumer of exports   → publish, transform, core
    elt                               the flows and their CLI → report, publish, transform, extract, core
    publish                           Parquet versions        → transform (what dbt built), core
    transform                         dbt, run from Python    → core, and extract's registry of names
    extract                           the loaders             → core
    core                              settings, lock, run log, secrets, signals, env file, TLS → nothing
    services                          the embedded source systems, beside it all → nothing of the pipeline

Why these lines: ``core`` at the bottom imports nothing of the repo, so any part can use it without
dragging in another. ``extract`` and ``transform``/``publish`` do not know each other's internals: the
loaders run without dbt, and dbt runs on whatever the loaders left. The one exception is named below
(``SURFACE``): dbt is told which sources exist (``SHOP_SOURCE_NAMES``, transform/dbt_runner.py), and
the loaders' registry is the only list of names. ``publish`` reads what dbt built (the manifest's marts,
transform/dbt_artifacts.py), never the other way round. ``services/`` is the shop's own source
systems, the test peer and never the product: it imports nothing of the pipeline and the pipeline
nothing of it (the flow reaches the fleet through its command line, elt/fleet.py), so a team running
the loaders against its own services never needs the shop's code.

Read from the source with ``ast`` (every ``import`` and absolute ``from … import``, function-local
ones included), so a lazy import inside a function cannot slip through. A new top-level package must
be given its place in ``ALLOWED`` before the check passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.pytest.support.paths import REPO

ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "services": set(),
    "extract": {"core"},
    "transform": {"core"},
    "publish": {"core", "transform"},
    "report": {"core", "transform", "publish"},
    "elt": {"core", "extract", "transform", "publish", "report"},
    "orchestration": {"core", "extract", "transform", "publish", "elt", "report"},
    "bench": {"core", "extract", "transform", "publish", "elt", "report", "orchestration", "services"},
}
# Modules of an otherwise forbidden package that one layer may still import: its public surface.
SURFACE: dict[str, set[str]] = {
    # the registry of source files and its error: the names dbt is told (transform/dbt_runner.py)
    "transform": {"extract.sources", "extract.errors"},
}
NOT_CODE = {"tests", "docs", "models", "macros", "seeds", "snapshots", "sources", "target", "dbt_packages"}


def packages(root: Path = REPO) -> list[str]:
    """The repo's top-level Python packages (folders holding an ``__init__.py``)."""
    return sorted(
        p.parent.name for p in root.glob("*/__init__.py") if p.parent.name not in NOT_CODE | {".venv"}
    )


def imported_modules(package: str, root: Path = REPO) -> list[tuple[str, int, str]]:
    """(file, line, dotted name) of every absolute import in ``package``'s modules; ``from a.b import c``
    gives ``a.b.c`` (a module or a name in one: the surface rule matches either)."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            found += [(path.relative_to(root).as_posix(), node.lineno, n) for n in names]
    return found


def imported_packages(package: str, root: Path = REPO) -> list[tuple[str, int, str]]:
    """(file, line, top-level package) of every absolute import in ``package``'s modules."""
    return [(f, line, name.split(".")[0]) for f, line, name in imported_modules(package, root)]


def wrong_imports(package: str, root: Path = REPO) -> list[str]:
    """Every import of ``package`` that points at a repo package its layer may not use."""
    repo_packages = set(packages(root)) | {"tests"}
    allowed = ALLOWED[package] | {package}
    surface = SURFACE.get(package, set())
    wrong = []
    for f, line, name in imported_modules(package, root):
        top = name.split(".")[0]
        if top not in repo_packages or top in allowed:
            continue
        if any(name == s or name.startswith(s + ".") for s in surface):
            continue
        wrong.append(f"{f}:{line} imports {name} ({package} may import {', '.join(sorted(allowed))})")
    return wrong


def test_every_package_has_a_layer() -> None:
    found = packages()
    assert {"core", "extract", "transform", "publish", "elt", "services"} <= set(found), found
    missing = [p for p in found if p not in ALLOWED]
    assert not missing, f"packages with no place in tests/pytest/test_layers.py ALLOWED: {missing}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_points_the_wrong_way(package: str) -> None:
    assert imported_modules(package), f"no imports found under {package}/: the check reads nothing"
    wrong = wrong_imports(package)
    assert not wrong, "imports that point the wrong way:\n" + "\n".join(wrong)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name in ALLOWED:
        (root / name).mkdir(exist_ok=True)
        (root / name / "__init__.py").touch()
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize(
    ("rel", "text", "package"),
    [
        ("core/m.py", "from extract import config\n", "core"),
        ("core/m.py", "def f():\n    import elt.flow\n", "core"),  # lazily, inside a function
        ("extract/m.py", "from transform import dbt_runner\n", "extract"),
        ("extract/m.py", "def f():\n    from services.common import tls\n", "extract"),
        ("extract/m.py", "from elt.stream import feed\n", "extract"),
        ("transform/m.py", "from publish import versions\n", "transform"),
        ("transform/m.py", "from extract.runner import main\n", "transform"),  # beyond the surface
        ("transform/m.py", "from extract import resources\n", "transform"),
        ("publish/m.py", "from elt import flow\n", "publish"),
        ("report/m.py", "from extract import sources\n", "report"),
        ("elt/m.py", "from orchestration import definitions\n", "elt"),
        ("services/m.py", "from core import settings\n", "services"),
    ],
)
def test_the_check_flags_a_wrong_import(tmp_path: Path, rel: str, text: str, package: str) -> None:
    root = _tree(tmp_path, {rel: text})
    wrong = wrong_imports(package, root)
    assert len(wrong) == 1 and wrong[0].startswith(f"{rel}:"), wrong


def test_the_check_passes_imports_that_point_down(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "extract/m.py": "from core import settings\nimport json\n",
            "transform/m.py": "from core.lock import warehouse_lock\nfrom extract.sources import SERVICES\n"
            "from extract import errors\n",
            "publish/m.py": "from transform import dbt_artifacts\n",
            "elt/m.py": "from extract import runner\nfrom publish.publish import publish\n"
            "from elt import fleet\n",
            "orchestration/m.py": "from elt import flow\n",
        },
    )
    for package in ("extract", "transform", "publish", "elt", "orchestration"):
        assert wrong_imports(package, root) == [], package


def test_a_package_without_a_layer_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"newpart/__init__.py": "", "newpart/m.py": "from core import settings\n"})
    assert "newpart" in packages(root) and "newpart" not in ALLOWED
