-- The loaders' record of each committed service load (extract/horizon.py), typed like the rest of
-- staging. The consistent cut (int_settled_horizon) reads the newest row per service.
with

source as (
    select *
    from {{ source_or_empty('ops', 'source_horizons', {
        'service': 'varchar', 'cutoff_at': 'timestamptz', 'lag_seconds': 'double', 'run_id': 'varchar',
        'recorded_at': 'timestamptz',
    }) }}
),

final as (
    select
        cast(service as {{ dbt.type_string() }}) as service,
        {{ to_utc('cutoff_at') }} as cutoff_at,
        cast(lag_seconds as double) as lag_seconds,
        cast(run_id as {{ dbt.type_string() }}) as run_id,
        {{ to_utc('recorded_at') }} as recorded_at
    from source
)

select * from final
