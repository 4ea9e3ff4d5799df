with

source as (
    select * from {{ source('orders', 'orders__items') }}
    where {{ committed_loads('orders') }}
),

renamed as (
    select
        cast(order_id as {{ dbt.type_string() }}) || '-' || cast(line_id as {{ dbt.type_string() }}) as order_item_id,
        cast(order_id as bigint) as order_id,
        cast(line_id as integer) as line_number,
        cast(product_id as bigint) as product_id,
        cast(sku as {{ dbt.type_string() }}) as sku,
        cast(quantity as integer) as quantity,
        cast(unit_price_minor as bigint) as unit_price_minor,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
    from source
),

final as (
    select
        order_item_id,
        order_id,
        line_number,
        product_id,
        sku,
        quantity,
        unit_price_minor,
        load_id
    from renamed
    qualify row_number() over (
        partition by order_id, line_number
        order by {{ load_order('load_id') }} desc
    ) = 1
)

select * from final
