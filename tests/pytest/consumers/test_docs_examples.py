"""docs/publishing.md's "Reading with each library" block runs as written against a published version
(the shared clean run's), and what it reads is the version's data: a doc example that no longer works
fails here, not on a reader's first try."""

from __future__ import annotations

import contextlib
import io
import re
from decimal import Decimal

from tests.pytest.support.paths import REPO
from tests.pytest.support.world import Published


def _reading_block() -> str:
    text = (REPO / "docs" / "publishing.md").read_text()
    section = text.split("## Reading with each library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section should hold one python block"
    return blocks[0]


def test_the_reading_examples_run_and_read_the_published_data(published: Published) -> None:
    code = _reading_block()
    assert code.count('Path("exports")') == 1
    exports = published.version_dir.parent.parent  # versions/<id> -> the exports root
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(
            compile(code.replace('Path("exports")', f"Path({str(exports)!r})"), "publishing.md", "exec"),
            namespace,
        )
    marts = published.manifest["marts"]
    rows = marts["fct_orders"]["rows"]
    assert namespace["version"].resolve() == published.version_dir  # type: ignore[union-attr]
    assert namespace["table"].num_rows == namespace["same"].num_rows == rows  # type: ignore[union-attr]
    assert len(namespace["df"]) == len(namespace["df_arrow"]) == namespace["pl_df"].height == rows  # type: ignore[arg-type,union-attr]
    assert sum(r[1] for r in namespace["monthly"]) == rows  # type: ignore[union-attr]
    kept = namespace["kept"]
    assert isinstance(kept, Decimal) and kept == Decimal(
        str(namespace["by_region"]["kept_gross_amount_usd"].sum())
    )  # type: ignore[index]
    printed = out.getvalue().splitlines()
    assert printed[0] == f"{rows} timestamp[us, tz=UTC]"
    assert printed[1].endswith("datetime64[us, UTC]")
