{% snapshot snap_product_prices %}
    {{
        config(
            unique_key='product_id',
            strategy='check',
            check_cols=['list_price', 'currency', 'is_active'],
        )
    }}
    -- SCD2 history of product prices: a new version whenever the list price, its currency or the
    -- product's activity changes (check strategy, so a touch of updated_at alone adds nothing).
    with

    products as (
        select * from {{ ref('stg_catalog__products') }}
    ),

    final as (
        select
            product_id,
            sku,
            currency,
            list_price,
            is_active,
            updated_at
        from products
    )

    select * from final
{% endsnapshot %}
