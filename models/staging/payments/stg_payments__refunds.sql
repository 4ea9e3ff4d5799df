{%- set raw = source('payments', 'refunds') -%}
with

source as (
    select *
    from {{ source_or_empty('payments', 'refunds', {
        'refund_id': 'bigint', 'order_id': 'bigint', 'payment_id': 'bigint', 'currency': 'varchar',
        'amount_minor': 'bigint', 'reason': 'varchar', 'status': 'varchar', 'created_at': 'timestamptz',
        'updated_at': 'timestamptz', '_dlt_load_id': 'varchar',
    }) }}
    where {{ committed_loads('payments') }}
),

renamed as (
    select
        cast(refund_id as bigint) as refund_id,
        cast(order_id as bigint) as order_id,
        cast(payment_id as bigint) as payment_id,
        upper(cast(currency as {{ dbt.type_string() }})) as currency,
        {{ minor_to_amount('amount_minor', 'currency') }} as amount,
        cast({{ column_or_null(raw, 'reason') }} as {{ dbt.type_string() }}) as refund_reason,
        lower(cast(status as {{ dbt.type_string() }})) as refund_status,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
    from source
),

final as (
    select
        refund_id,
        order_id,
        payment_id,
        currency,
        amount,
        refund_reason,
        refund_status,
        created_at,
        updated_at,
        load_id
    from renamed
    qualify row_number() over (
        partition by refund_id
        order by updated_at desc, {{ load_order('load_id') }} desc
    ) = 1
)

select * from final
