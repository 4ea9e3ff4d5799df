{#- Lifecycle timestamps never run backwards: each listed column is on or after every earlier listed one
    (e.g. placed ≤ paid ≤ shipped ≤ delivered). NULLs (stage not reached) are skipped. -#}
{% test ordered_timestamps(model, columns) %}
    {%- set pairs = [] -%}
    {%- for earlier in columns -%}
        {%- for later in columns[loop.index:] -%}
            {%- do pairs.append('(' ~ later ~ ' < ' ~ earlier ~ ')') -%}
        {%- endfor -%}
    {%- endfor %}
    select *
    from {{ model }}
    where {{ pairs | join(' or ') }}
{% endtest %}
