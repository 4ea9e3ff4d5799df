-- The consistent cut assumes a source commits a change at most max_commit_delay_seconds after stamping
-- it. The loaders re-read lag_seconds behind their cursor on every run; a late commit further back than
-- that is never loaded, so a cut that assumed more would call an order settled while part of it can
-- still be missing. Fails for a cut service whose newest load re-read less than the assumed delay:
-- raise lag_seconds (.dlt/config.toml) or lower the var (docs/consistency.md).
with

horizons as (
    select * from {{ ref('stg_ops__source_horizons') }}
),

horizon as (
    select * from {{ ref('int_settled_horizon') }}
),

newest as (
    select
        service,
        lag_seconds
    from horizons
    where service in (select {{ shop_unnest('horizon.cut_services') }} from horizon)
    qualify row_number() over (partition by service order by cutoff_at desc, recorded_at desc) = 1
),

final as (
    select
        newest.service,
        newest.lag_seconds,
        horizon.max_commit_delay_seconds
    from newest
    cross join horizon
    where newest.lag_seconds < horizon.max_commit_delay_seconds
)

select * from final
