{#- Clean schema names: a model configured with +schema: staging lands in `staging`, not
    `<target>_staging`. The warehouse holds one environment per file (SHOP_WAREHOUSE), so the
    target-name prefix dbt adds by default would only make queries longer. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
