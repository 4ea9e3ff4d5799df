{#- Money columns (amounts, totals, rates) may be zero but never negative; a negative amount means a
    sign error in a conversion or a netting step. Fails on every offending row. -#}
{% test non_negative_money(model, column_name) %}
    select {{ column_name }} as offending_value
    from {{ model }}
    where {{ column_name }} < 0
{% endtest %}
