{#- Keyed hash of personal data for published marts: sha256(key || normalised value). The key is the
    DuckDB session variable `pii_key`, set by profiles.yml from DBT_ENV_SECRET_PII_KEY, so it is never
    written into compiled SQL or logs. Without a key the hash would be a dictionary-reversible digest,
    so the query fails instead (fail closed). NULL stays NULL. -#}
{% macro pii_hash(value_expression) -%}
    case
        when {{ value_expression }} is null then null
        when coalesce(getvariable('pii_key'), '') = ''
            then error('PII key missing: set DBT_ENV_SECRET_PII_KEY (the ELT runner derives it from SHOP_PII_KEY)')
        else sha256(getvariable('pii_key') || lower(trim(cast({{ value_expression }} as varchar))))
    end
{%- endmacro %}
