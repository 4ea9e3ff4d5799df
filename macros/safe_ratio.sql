{#- A share rounded to 4 places, NULL when the denominator is 0 (a day without carts has no
    cart-to-checkout rate, not a rate of 0). -#}
{% macro safe_ratio(numerator, denominator) -%}
    cast(round({{ numerator }} / nullif({{ denominator }}, 0), 4) as decimal(6, 4))
{%- endmacro %}
