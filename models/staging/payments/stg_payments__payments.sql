{%- set raw = source('payments', 'payments') -%}
with

source as (
    select * from {{ raw }}
    where {{ committed_loads('payments') }}
),

renamed as (
    select
        cast(payment_id as bigint) as payment_id,
        cast(order_id as bigint) as order_id,
        lower(cast(method as {{ dbt.type_string() }})) as payment_method,
        lower(cast(status as {{ dbt.type_string() }})) as payment_status,
        cast({{ column_or_null(raw, 'failure_reason') }} as {{ dbt.type_string() }}) as failure_reason,
        upper(cast(currency as {{ dbt.type_string() }})) as currency,
        {{ minor_to_amount('amount_minor', 'currency') }} as amount,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
    from source
),

final as (
    select
        payment_id,
        order_id,
        payment_method,
        payment_status,
        failure_reason,
        currency,
        amount,
        created_at,
        updated_at,
        load_id
    from renamed
    qualify row_number() over (
        partition by payment_id
        order by updated_at desc, {{ load_order('load_id') }} desc
    ) = 1
)

select * from final
