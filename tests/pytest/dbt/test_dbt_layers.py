"""The dbt layers point one way (docs/dbt.md, "Layer conventions"), read from the SQL files themselves so
the check needs no warehouse: staging reads sources and its own service's base models, never another
staging model; base models read sources only; intermediate and marts never read a source directly."""

from __future__ import annotations

import re

from tests.pytest.support.paths import REPO

MODELS = REPO / "models"
REF = re.compile(r"""\bref\(\s*['"](\w+)['"]""")
SOURCE = re.compile(r"""\bsource(?:_or_empty)?\(\s*['"](\w+)['"]""")


def _reads(folder: str) -> dict[str, tuple[list[str], list[str]]]:
    files = sorted((MODELS / folder).rglob("*.sql"))
    assert files, f"no models under models/{folder}"
    return {f.stem: (REF.findall(text := f.read_text()), SOURCE.findall(text)) for f in files}


def test_no_staging_model_reads_another_staging_model() -> None:
    for model, (refs, _) in _reads("staging").items():
        service = model.split("__")[0].removeprefix("stg_").removeprefix("base_")
        for ref in refs:
            assert ref.startswith(f"base_{service}__"), (
                f"{model} reads {ref}: staging may only read sources and base_{service}__*"
            )
        if model.startswith("base_"):
            assert not refs, f"base model {model} reads {refs}: base models read sources only"


def test_only_staging_reads_sources() -> None:
    for folder in ("intermediate", "marts"):
        for model, (_, sources) in _reads(folder).items():
            assert not sources, f"{model} reads source(s) {sources} directly: go through a staging model"
