{#- Money arrives as integer minor units with an ISO 4217 currency. The number of minor digits is a
    property of the currency, not a constant: USD/EUR/GBP have 2, JPY/KRW 0, KWD/BHD/JOD/OMR/TND 3. -#}
{% macro currency_exponent(currency_column) -%}
    case upper({{ currency_column }})
        when 'JPY' then 0
        when 'KRW' then 0
        when 'ISK' then 0
        when 'KWD' then 3
        when 'BHD' then 3
        when 'JOD' then 3
        when 'OMR' then 3
        when 'TND' then 3
        else 2
    end
{%- endmacro %}

{#- Minor units → a decimal amount in the same currency. decimal(20, 4) holds every exponent above
    exactly (no float on the way: the division is done in decimal). -#}
{% macro minor_to_amount(minor_column, currency_column) -%}
    cast(
        cast({{ minor_column }} as decimal(20, 4))
        / cast(power(10, {{ currency_exponent(currency_column) }}) as decimal(20, 4))
        as decimal(20, 4)
    )
{%- endmacro %}

{#- An amount in a source currency → the reporting currency, rounded to its minor unit (cents for USD).
    `rate_column` is units of reporting currency per one unit of the source currency. -#}
{% macro convert_amount(amount_column, rate_column) -%}
    cast(round(cast({{ amount_column }} as decimal(20, 4)) * {{ rate_column }}, 2) as decimal(18, 2))
{%- endmacro %}
