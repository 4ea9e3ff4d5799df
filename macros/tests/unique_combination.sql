{#- A composite key is unique (dbt_utils cannot be installed here). Each column name is quoted the
    engine's way, so a key named like a reserved word works on DuckDB and Spark alike. -#}
{% test unique_combination(model, columns) %}
    {%- set quoted = [] -%}
    {%- for column in columns -%}
        {%- do quoted.append(adapter.quote(column)) -%}
    {%- endfor %}
    select
        {{ quoted | join(', ') }},
        count(*) as occurrences
    from {{ model }}
    group by {{ quoted | join(', ') }}
    having count(*) > 1
{% endtest %}
