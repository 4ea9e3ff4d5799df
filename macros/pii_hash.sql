{#- The key of pii_hash, as an SQL expression. It comes from the DuckDB session variable `pii_key` (set
    by profiles.yml from DBT_ENV_SECRET_PII_KEY, which `python -m elt` exports), or else from the key file
    the ELT runner generates once (`<SHOP_RUN_DIR or run>/pii.key`), so a plain `dbt build` from the repo root hashes
    with the same key as `make elt`. The key is read inside DuckDB, never written into compiled SQL or
    logs. NULL when no key is set (pii_hash then fails). -#}
{% macro pii_key() -%}
    coalesce(
        nullif(getvariable('pii_key'), ''),
        (
            select nullif(trim(content, e' \t\r\n'), '')
            from read_text('{{ env_var("SHOP_RUN_DIR", "run") }}/pii.ke[y]')
        )
    )
{%- endmacro %}

{#- Keyed hash of personal data for published marts: sha256(key || lower(trim(value))), so consumers can
    join on it and nobody can reverse it with a dictionary of e-mail addresses. Without a key the hash
    would be exactly such a reversible digest, so the query fails instead (fail closed). NULL stays NULL.

    Arguments:
      value_expression - the column or expression holding the personal value -#}
{% macro pii_hash(value_expression) -%}
    case
        when {{ value_expression }} is null then null
        when {{ pii_key() }} is null
            then error(
                'PII key missing: set SHOP_PII_KEY / DBT_ENV_SECRET_PII_KEY, restore run/pii.key,'
                || ' or on a first install run make elt once'
            )
        else sha256({{ pii_key() }} || lower(trim(cast({{ value_expression }} as varchar))))
    end
{%- endmacro %}
