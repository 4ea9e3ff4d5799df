"""The macro style check (transform/lint_macros.py): each rule catches what it names, and the project's own
macros pass (make lint runs the same check through `python -m elt lint-sql`)."""

from __future__ import annotations

from tests.pytest.support.paths import REPO
from transform import lint_macros

GOOD = """{#- Why this macro exists.

    Arguments:
      column - what it reads -#}
{% macro good(column) -%}
    case when {{ column }} is null then 'SELECT stays: a string' else {{ column }} end  -- FROM in a comment
{%- endmacro %}
"""


def rules(text: str) -> list[str]:
    return [p.split(": ")[1] for p in lint_macros.check_text(text, "m.sql")]


def test_a_well_written_macro_passes() -> None:
    assert lint_macros.check_text(GOOD, "m.sql") == []


def test_each_rule_catches_its_case() -> None:
    assert rules(GOOD.replace("case when", "CASE when")) == ["case"]
    assert rules(GOOD.replace("{{ column }} is null", "{{column}} is null")) == ["padding"]
    assert rules(GOOD.replace("{%- endmacro %}", "{%-endmacro %}")) == ["padding"]
    undocumented = GOOD.replace("{#- Why", "-- Why").replace("reads -#}", "reads")
    assert rules(undocumented) == ["doc"]
    assert rules(GOOD.replace("    case", "\tcase")) == ["layout"]
    assert rules(GOOD.replace("end  --", "end " + "x" * 120 + " --")) == ["layout"]
    assert rules(GOOD.rstrip("\n")) == ["layout"]


def test_the_second_macro_in_a_file_needs_its_own_doc() -> None:
    text = GOOD + "\n{% macro other() -%}\n    1\n{%- endmacro %}\n"
    problems = lint_macros.check_text(text, "m.sql")
    assert len(problems) == 1 and "macro 'other' has no doc comment" in problems[0]


def test_the_project_macros_pass() -> None:
    assert lint_macros.run(REPO) == 0
