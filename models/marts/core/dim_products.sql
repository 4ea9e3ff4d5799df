-- One row per product with its category and current list price (in the catalog currency and in USD at
-- the latest rate). Price history is in the snap_product_prices snapshot.
with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

fx_rates as (
    select * from {{ ref('int_fx_rates') }}
    where valid_to is null
),

final as (
    select
        products.product_id,
        products.sku,
        products.product_name,
        products.category_id,
        products.category_name,
        products.department,
        products.currency,
        cast(products.list_price as decimal(18, 4)) as list_price,
        {{ convert_amount('products.list_price', 'fx_rates.fx_rate') }} as list_price_usd,
        products.is_active,
        products.created_at,
        products.updated_at
    from products
    left join fx_rates
        on products.currency = fx_rates.currency
)

select * from final
