{#- The key of pii_hash, as an SQL expression. It comes from the DuckDB session variable `pii_key` (set
    by profiles.yml from DBT_ENV_SECRET_PII_KEY, which `python -m elt` exports), or else from the key file
    the ELT runner generates once (`<SHOP_RUN_DIR or run>/pii.key`), so a plain `dbt build` from the repo root hashes
    with the same key as `make elt`. The key is read inside DuckDB, never written into compiled SQL or
    logs. NULL when no key is set (pii_hash then fails). -#}
{% macro pii_key() -%}
    {{ return(adapter.dispatch('pii_key')()) }}
{%- endmacro %}

{#- DuckDB: the session variable, else the key file. -#}
{% macro duckdb__pii_key() -%}
    coalesce(
        nullif(getvariable('pii_key'), ''),
        (
            select nullif(trim(content, e' \t\r\n'), '')
            from read_text('{{ env_var("SHOP_RUN_DIR", "run") }}/pii.ke[y]')
        )
    )
{%- endmacro %}

{#- Spark has no session variables that profiles.yml could set without the value reaching SQL text, so the
    key reaches it as a file, read inside Spark with its text data source: SHOP_SPARK_PII_KEY_FILE, which
    the Spark runner (transform/spark/runner.py) points at a private file holding the key it resolved, or
    else the same `run/pii.key` as DuckDB's fallback. The compiled SQL holds the path, never the key; a
    missing file fails the query (Path does not exist), a blank one gives NULL and pii_hash fails. -#}
{% macro spark__pii_key() -%}
    (
        select nullif(trim(both ' \t\r' from max(key_file.value)), '')
        from text.`{{ env_var("SHOP_SPARK_PII_KEY_FILE", env_var("SHOP_RUN_DIR", "run") ~ "/pii.key") }}` as key_file
    )
{%- endmacro %}

{#- Keyed hash of personal data for published marts: sha256(key || lower(trim(value))), so consumers can
    join on it and nobody can reverse it with a dictionary of e-mail addresses. Without a key the hash
    would be exactly such a reversible digest, so the query fails instead (fail closed). NULL stays NULL.

    Arguments:
      value_expression - the column or expression holding the personal value -#}
{% macro pii_hash(value_expression) -%}
    {%- set value_text = 'lower(trim(cast(' ~ value_expression ~ ' as ' ~ shop_type('varchar') ~ ')))' -%}
    case
        when {{ value_expression }} is null then null
        when {{ pii_key() }} is null
            then {{ shop_raise(
                "'PII key missing: set SHOP_PII_KEY / DBT_ENV_SECRET_PII_KEY, restore run/pii.key,'"
                ~ " || ' or on a first install run make elt once'"
            ) }}
        else {{ shop_sha256(pii_key() ~ ' || ' ~ value_text) }}
    end
{%- endmacro %}
