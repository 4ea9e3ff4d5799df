{#- dlt creates a raw table only once it has seen a row for it: a young source may have had no erasures
    (raw_customers.deletions) or no refunds (raw_payments.refunds) yet. Staging reads such tables through
    this macro, which stands in an empty relation of the given columns while the table does not exist, so
    the project builds from the very first load. `columns` maps column name → DuckDB type; each name is
    quoted the engine's way (a raw column may be named like a reserved word). -#}
{% macro source_or_empty(source_name, table_name, columns) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if execute and adapter.get_relation(
        database=relation.database, schema=relation.schema, identifier=relation.identifier
    ) is none -%}
        (
            select
            {%- for name, data_type in columns.items() %}
                cast(null as {{ shop_type(data_type) }}) as {{ adapter.quote(name) }}{{ ',' if not loop.last }}
            {%- endfor %}
            where false
        )
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}
