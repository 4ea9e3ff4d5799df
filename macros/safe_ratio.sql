{#- A ratio rounded half up to `places` decimals, as a double, equal on every engine.

    Why not round(numerator / denominator, places): a tie such as 162 s = 0.045 h is not a double; DuckDB
    rounds the double's binary value (just below: 0.04), Spark its shortest decimal text (0.05), so the same
    model gave different marts. Here the quotient is scaled before the one division (numerator × 10^places,
    exact for whole numbers), so a true tie k + 0.5 is held exactly, and both engines round it away from
    zero; every other quotient is the same correctly rounded double on both, and so is its rounding. -#}
{% macro rounded_ratio(numerator, denominator, places) -%}
    round(cast({{ numerator }} as double) * {{ 10 ** places }} / {{ denominator }}) / {{ 10 ** places }}
{%- endmacro %}

{#- A share rounded to 4 places, NULL when the denominator is 0 (a day without carts has no
    cart-to-checkout rate, not a rate of 0). -#}
{% macro safe_ratio(numerator, denominator) -%}
    cast({{ rounded_ratio(numerator, 'nullif(' ~ denominator ~ ', 0)', 4) }} as decimal(6, 4))
{%- endmacro %}
