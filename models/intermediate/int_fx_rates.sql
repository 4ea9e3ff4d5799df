-- Daily rates as validity ranges, so any timestamp converts with an as-of join: the latest rate on or
-- before the day. The last rate of each currency stays valid forever (valid_to is null), which covers
-- days after the seed's end.
with

rates as (
    select * from {{ ref('fx_rates_daily') }}
),

ranged as (
    select
        currency,
        rate_date as valid_from,
        lead(rate_date) over (partition by currency order by rate_date) as valid_to,
        usd_per_unit as fx_rate
    from rates
),

final as (
    select
        currency,
        valid_from,
        valid_to,
        fx_rate
    from ranged
)

select * from final
