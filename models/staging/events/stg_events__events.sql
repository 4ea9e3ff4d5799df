{%- set raw = source('events', 'events') -%}
with

source as (
    select * from {{ raw }}
    where {{ committed_loads('events') }}
),

renamed as (
    select
        cast(event_id as bigint) as event_id,
        lower(cast(event_type as {{ dbt.type_string() }})) as event_type,
        {{ to_utc('occurred_at') }} as occurred_at,
        cast(session_id as {{ dbt.type_string() }}) as session_id,
        cast({{ column_or_null(raw, 'anonymous_id') }} as {{ dbt.type_string() }}) as anonymous_id,
        cast({{ column_or_null(raw, 'customer_id') }} as bigint) as customer_id,
        cast({{ column_or_null(raw, 'context__page') }} as {{ dbt.type_string() }}) as page_path,
        cast({{ column_or_null(raw, 'context__referrer') }} as {{ dbt.type_string() }}) as referrer,
        cast({{ column_or_null(raw, 'context__device') }} as {{ dbt.type_string() }}) as device_type,
        upper(cast({{ column_or_null(raw, 'context__country') }} as {{ dbt.type_string() }})) as country_code,
        cast({{ column_or_null(raw, 'properties__product_id') }} as bigint) as product_id,
        cast({{ column_or_null(raw, 'properties__sku') }} as {{ dbt.type_string() }}) as sku,
        cast({{ column_or_null(raw, 'properties__quantity') }} as integer) as quantity,
        cast({{ column_or_null(raw, 'properties__order_id') }} as bigint) as order_id,
        cast({{ column_or_null(raw, 'properties__value_minor') }} as bigint) as value_minor,
        upper(cast({{ column_or_null(raw, 'properties__currency') }} as {{ dbt.type_string() }})) as value_currency,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
    from source
),

final as (
    select
        event_id,
        event_type,
        occurred_at,
        session_id,
        anonymous_id,
        customer_id,
        page_path,
        referrer,
        device_type,
        country_code,
        product_id,
        sku,
        quantity,
        order_id,
        {{ minor_to_amount('value_minor', 'value_currency') }} as event_value,
        value_currency,
        load_id
    from renamed
    -- append-only by event_id, exactly once; a replayed package must still not double-count
    qualify row_number() over (
        partition by event_id
        order by {{ load_order('load_id') }} desc
    ) = 1
)

select * from final
