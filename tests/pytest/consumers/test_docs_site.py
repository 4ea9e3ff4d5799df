"""The dbt docs site ``make docs`` builds (``python -m elt docs``) opens from a ``file://`` URL in headless
Chromium: the project's own overview, a public mart's owner and meta, and its lineage graph drawn;
no console error, no request off the machine."""

from __future__ import annotations

import re
from pathlib import Path

from tests.pytest.consumers.browser import Action, Chromium
from tests.pytest.support.world import DocsSite
from transform import docs_site

PNG = b"\x89PNG\r\n\x1a\n"
LAUNCHER = "document.querySelector('a[title=\"View Lineage Graph\"]')"  # dbt-docs' round graph button
# Pixels cytoscape painted: the lineage graph is drawn on canvases, so "rendered" means ink on them.
GRAPH_INK = """Array.from(document.querySelectorAll('.__________cytoscape_container canvas'))
.filter(c => c.width > 0 && c.height > 0).map(c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;
}).reduce((a, b) => a + b, 0)"""


def test_overview_and_a_marts_owner_and_lineage_render_from_a_file(
    docs_site: DocsSite, browser: Chromium, output_dir: Path
) -> None:
    page = docs_site.page
    assert page.is_file() and "docs site:" in docs_site.outcome.output
    overview = browser.visit(
        page.as_uri() + "#!/overview",
        ready="document.body.textContent.includes('Reading the lineage')",
        read=f"{{text: document.body.textContent, launcher: !!{LAUNCHER}}}",
        screenshot=output_dir / "docs-overview.png",
    )
    assert overview.ready, overview.console_errors
    text = overview.values["text"]
    assert "shop-elt: the dbt project" in text and "The layers" in text and "Who owns what" in text
    assert "Welcome!" not in text  # dbt's default overview is replaced
    assert overview.values["launcher"]

    model = browser.visit(
        page.as_uri() + "#!/model/model.shop.fct_orders",
        ready="document.body.textContent.includes('publish_high_water_mark')",
        read=f"{{text: document.body.textContent, ink: {GRAPH_INK}}}",
        actions=[Action(f"{LAUNCHER}.click()", f"({GRAPH_INK}) > 1000", output_dir / "docs-lineage.png")],
    )
    assert model.ready, f"the lineage graph was not drawn; console: {model.console_errors}"
    assert "Commerce analytics <commerce-analytics@example.com>" in model.values["text"]  # owner (meta)
    assert "source_updated_at" in model.values["text"] and "placed_month" in model.values["text"]
    assert model.values["ink"] > 1000

    for visit in (overview, model):
        assert visit.console_errors == [], visit.url
        assert visit.requests and visit.external_requests == [], visit.url
        for shot in visit.screenshots:
            assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 10_000


def test_the_page_dbt_writes_would_log_errors_that_the_build_removes() -> None:
    """``transform.docs_site.clean`` is what makes the console clean: on dbt-docs' own markup it changes the
    icon templates and the favicon link, and nothing else."""
    import importlib.resources

    original = (importlib.resources.files("dbt.task.docs") / "index.html").read_text(encoding="utf-8")
    cleaned, counts = docs_site.clean(original)
    assert counts == {"icon templates": 4, "favicon links": 1}
    assert not re.search(r'(?<!ng-attr-)xlink:href="\{\{', cleaned) and "favicon.ico')}" not in cleaned
    assert len(cleaned) - len(original) == 4 * len("ng-attr-") + len(
        '<link rel="icon" href="data:,"/>'
    ) - len('<link rel="shortcut icon" href="${require(\'./assets/favicons/favicon.ico\')}"/>')


def test_every_published_mart_is_public_and_owned(docs_site: DocsSite) -> None:
    """What the docs site shows on a mart's page comes from dbt's manifest: a group whose owner has a
    name and an e-mail, public access, ``meta.owner``, and a high-water-mark column that is in the
    mart's contract (the exports' manifest records its newest value)."""
    import json

    manifest = json.loads((docs_site.page.parent / "manifest.json").read_text())
    groups = {g["name"]: g for g in manifest["groups"].values()}
    published = [
        n for n in manifest["nodes"].values() if n["resource_type"] == "model" and "publish" in n["tags"]
    ]
    assert len(published) == 11
    for node in published:
        owner = groups[node["group"]]["owner"]
        assert owner["name"] and owner["email"].endswith("@example.com"), node["name"]
        assert node["access"] == "public", node["name"]
        meta = node["config"]["meta"]
        assert meta["owner"] == f"{owner['name']} <{owner['email']}>", node["name"]
        assert meta["publish_high_water_mark"] in node["columns"], node["name"]
