{%- set raw = source('orders', 'orders') -%}
with

source as (
    select * from {{ raw }}
    where {{ committed_loads('orders') }}
),

renamed as (
    select
        cast(order_id as bigint) as order_id,
        cast(customer_id as bigint) as customer_id,
        lower(cast(status as {{ dbt.type_string() }})) as order_status,
        upper(cast(currency as {{ dbt.type_string() }})) as currency,
        {{ minor_to_amount('subtotal_minor', 'currency') }} as subtotal_amount,
        {{ minor_to_amount('discount_minor', 'currency') }} as discount_amount,
        {{ minor_to_amount('shipping_minor', 'currency') }} as shipping_amount,
        {{ minor_to_amount('total_minor', 'currency') }} as total_amount,
        {{ to_utc('placed_at') }} as placed_at,
        {{ to_utc(column_or_null(raw, 'paid_at')) }} as paid_at,
        {{ to_utc(column_or_null(raw, 'shipped_at')) }} as shipped_at,
        {{ to_utc(column_or_null(raw, 'delivered_at')) }} as delivered_at,
        {{ to_utc(column_or_null(raw, 'cancelled_at')) }} as cancelled_at,
        {{ to_utc(column_or_null(raw, 'returned_at')) }} as returned_at,
        {{ to_utc('updated_at') }} as updated_at,
        upper(cast(shipping_country as {{ dbt.type_string() }})) as shipping_country_code,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
    from source
),

final as (
    select
        order_id,
        customer_id,
        order_status,
        currency,
        subtotal_amount,
        discount_amount,
        shipping_amount,
        total_amount,
        placed_at,
        paid_at,
        shipped_at,
        delivered_at,
        cancelled_at,
        returned_at,
        updated_at,
        shipping_country_code,
        load_id
    from renamed
    qualify row_number() over (
        partition by order_id
        order by updated_at desc, {{ load_order('load_id') }} desc
    ) = 1
)

select * from final
