{#- The project's SQL that DuckDB and Spark spell differently, one macro per construct, each dispatched to a
    `duckdb__` and a `spark__` version (adapter.dispatch). Why here and not inline: the models stay one text
    for both targets (profiles.yml: `dev` is DuckDB, `spark` is Spark), and the DuckDB versions render the
    very SQL the models held before, so the DuckDB build is unchanged. dbt's own cross-database macros are
    used where they render the same on both (dbt.type_string()); these cover what they do not.
    README "Scaling out" lists the differences. -#}

{#- A whole number of `part` boundaries between two timestamps (or dates), as DuckDB's date_diff counts
    them: 10:00:00.9 → 10:00:01.1 is one second, 31 Jan → 1 Feb is one month.

    Arguments:
      part          - 'second' or 'month'
      start, finish - SQL expressions -#}
{% macro shop_date_diff(part, start, finish) -%}
    {{ return(adapter.dispatch('shop_date_diff')(part, start, finish)) }}
{%- endmacro %}

{#- DuckDB: its own date_diff. -#}
{% macro duckdb__shop_date_diff(part, start, finish) -%}
    date_diff('{{ part }}', {{ start }}, {{ finish }})
{%- endmacro %}

{#- Spark: timestampdiff counts elapsed units, not boundaries, so the boundaries are computed: whole epoch
    seconds (unix_seconds truncates), or months of the calendar. -#}
{% macro spark__shop_date_diff(part, start, finish) -%}
    {%- if part == 'second' -%}
        (unix_seconds(cast({{ finish }} as timestamp_ltz)) - unix_seconds(cast({{ start }} as timestamp_ltz)))
    {%- elif part == 'month' -%}
        ((year({{ finish }}) - year({{ start }})) * 12 + month({{ finish }}) - month({{ start }}))
    {%- else -%}
        {{ exceptions.raise_compiler_error("shop_date_diff: part must be 'second' or 'month', got '" ~ part ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{#- An interval of `amount` `unit`s, to add to or subtract from a timestamp.

    Arguments:
      amount - a non-negative number (a literal rendered into the SQL)
      unit   - microseconds, seconds, minutes, hours or days -#}
{% macro shop_interval(amount, unit) -%}
    {{ return(adapter.dispatch('shop_interval')(amount, unit)) }}
{%- endmacro %}

{#- DuckDB: to_seconds(n), to_days(n), ... -#}
{% macro duckdb__shop_interval(amount, unit) -%}
    to_{{ unit }}({{ amount }})
{%- endmacro %}

{#- Spark: a day-to-second interval; its seconds argument takes fractions down to microseconds. -#}
{% macro spark__shop_interval(amount, unit) -%}
    {%- set per_unit = {'microseconds': '/ 1000000', 'seconds': '', 'minutes': '* 60', 'hours': '* 3600',
        'days': '* 86400'} -%}
    {%- if unit not in per_unit -%}
        {{ exceptions.raise_compiler_error("shop_interval: unknown unit '" ~ unit ~ "'") }}
    {%- endif -%}
    make_dt_interval(0, 0, 0, cast({{ amount }} {{ per_unit[unit] }} as decimal(18, 6)))
{%- endmacro %}

{#- The earliest timestamp, for a coalesce that must sort before every real one. -#}
{% macro shop_min_timestamp() -%}
    {{ return(adapter.dispatch('shop_min_timestamp')()) }}
{%- endmacro %}

{#- DuckDB has an infinite timestamp. -#}
{% macro duckdb__shop_min_timestamp() -%}
    timestamp '-infinity'
{%- endmacro %}

{#- Spark has none: the first day of its calendar. -#}
{% macro spark__shop_min_timestamp() -%}
    timestamp '0001-01-01 00:00:00'
{%- endmacro %}

{#- A timestamp truncated to `grain` (minute, hour, day, month), still a zone-less timestamp.

    Arguments:
      grain      - a date_trunc part
      expression - the timestamp -#}
{% macro shop_trunc(grain, expression) -%}
    {{ return(adapter.dispatch('shop_trunc')(grain, expression)) }}
{%- endmacro %}

{#- DuckDB: date_trunc keeps the type. -#}
{% macro duckdb__shop_trunc(grain, expression) -%}
    date_trunc('{{ grain }}', {{ expression }})
{%- endmacro %}

{#- Spark: date_trunc returns a zoned timestamp whatever it got; cast back (timestamp is zone-less in the
    spark target: spark.sql.timestampType). -#}
{% macro spark__shop_trunc(grain, expression) -%}
    cast(date_trunc('{{ grain }}', {{ expression }}) as timestamp)
{%- endmacro %}

{#- A literal list of strings, as a column value.

    Arguments:
      values - a list of strings (quoted here) -#}
{% macro shop_string_list(values) -%}
    {{ return(adapter.dispatch('shop_string_list')(values)) }}
{%- endmacro %}

{#- DuckDB: a list literal. -#}
{% macro duckdb__shop_string_list(values) -%}
    [{{ "'" ~ values | join("', '") ~ "'" }}]
{%- endmacro %}

{#- Spark: array(...). -#}
{% macro spark__shop_string_list(values) -%}
    array({{ "'" ~ values | join("', '") ~ "'" }})
{%- endmacro %}

{#- One row per element of a list, as a select-list item.

    Arguments:
      expression - a list (array) expression -#}
{% macro shop_unnest(expression) -%}
    {{ return(adapter.dispatch('shop_unnest')(expression)) }}
{%- endmacro %}

{#- DuckDB: unnest. -#}
{% macro duckdb__shop_unnest(expression) -%}
    unnest({{ expression }})
{%- endmacro %}

{#- Spark: explode. -#}
{% macro spark__shop_unnest(expression) -%}
    explode({{ expression }})
{%- endmacro %}

{#- A query that fails with `message` when it reaches this expression.

    Arguments:
      message - an SQL string expression -#}
{% macro shop_raise(message) -%}
    {{ return(adapter.dispatch('shop_raise')(message)) }}
{%- endmacro %}

{#- DuckDB: error(). -#}
{% macro duckdb__shop_raise(message) -%}
    error({{ message }})
{%- endmacro %}

{#- Spark: raise_error(). -#}
{% macro spark__shop_raise(message) -%}
    raise_error({{ message }})
{%- endmacro %}

{#- Hex sha256 of a string (lower-case digits on both engines).

    Arguments:
      expression - a string expression -#}
{% macro shop_sha256(expression) -%}
    {{ return(adapter.dispatch('shop_sha256')(expression)) }}
{%- endmacro %}

{#- DuckDB: sha256(). -#}
{% macro duckdb__shop_sha256(expression) -%}
    sha256({{ expression }})
{%- endmacro %}

{#- Spark: sha2(x, 256). -#}
{% macro spark__shop_sha256(expression) -%}
    sha2({{ expression }}, 256)
{%- endmacro %}

{#- The SQL type for one of the type names the staging macros are given (source_or_empty's columns):
    DuckDB takes them as written; Spark has no timestamptz (its timestamp is the zone-less one here, and
    staging's to_utc() reads both) and calls varchar string.

    Arguments:
      name - a DuckDB type name -#}
{% macro shop_type(name) -%}
    {{ return(adapter.dispatch('shop_type')(name)) }}
{%- endmacro %}

{#- DuckDB: as written. -#}
{% macro duckdb__shop_type(name) -%}
    {{ name }}
{%- endmacro %}

{#- Spark: the two names it does not know. -#}
{% macro spark__shop_type(name) -%}
    {{ {'timestamptz': 'timestamp', 'varchar': 'string'}.get(name | lower, name) }}
{%- endmacro %}

{#- `alias.*` with some columns replaced by expressions, in the columns' order.

    Arguments:
      alias        - the table alias in the query
      relation     - the relation behind it (its columns are listed on Spark)
      replacements - {column: SQL expression} -#}
{% macro shop_star_replace(alias, relation, replacements) -%}
    {{ return(adapter.dispatch('shop_star_replace')(alias, relation, replacements)) }}
{%- endmacro %}

{#- DuckDB: `* replace (...)`. -#}
{% macro duckdb__shop_star_replace(alias, relation, replacements) -%}
    {{ alias }}.* replace (
        {%- for name, expression in replacements.items() -%}
            {{ expression }} as {{ name }}{{ ', ' if not loop.last }}
        {%- endfor -%}
    )
{%- endmacro %}

{#- Spark has `* except` but no `* replace`: every column is listed (at run time; a placeholder at parse),
    in the model's documented order when the relation is the model's own table (Spark keeps partition
    columns last, and a union with the model's select is by position). -#}
{% macro spark__shop_star_replace(alias, relation, replacements) -%}
    {%- if not execute -%}
        {{ return(alias ~ '.*') }}
    {%- endif -%}
    {%- set found = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- set documented = (model.columns.keys() | list) if model is defined and model.columns else [] -%}
    {%- if documented and found | reject('in', documented) | list | length == 0 -%}
        {%- set found = documented | select('in', found) | list -%}
    {%- endif -%}
    {%- for name in found -%}
        {%- if name in replacements -%}
            {{ replacements[name] }} as {{ name }}
        {%- else -%}
            {{ alias }}.{{ name }}
        {%- endif -%}
        {{ ', ' if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
