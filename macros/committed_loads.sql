{#- dlt makes rows visible before their load package is committed (a killed load leaves rows with no
    _dlt_loads entry). Staging reads only rows of committed loads: status 0 in the schema's _dlt_loads. -#}
{% macro committed_loads(source_name, load_id_column='_dlt_load_id') -%}
    {{ load_id_column }} in (
        select dlt_loads.load_id
        from {{ source(source_name, '_dlt_loads') }} as dlt_loads
        where dlt_loads.status = 0
    )
{%- endmacro %}
