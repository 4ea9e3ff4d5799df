with

source as (
    select * from {{ source('catalog', 'products') }}
    where {{ committed_loads('catalog') }}
),

renamed as (
    select
        cast(product_id as bigint) as product_id,
        cast(sku as {{ dbt.type_string() }}) as sku,
        cast(name as {{ dbt.type_string() }}) as product_name,
        cast(category__category_id as bigint) as category_id,
        cast(category__name as {{ dbt.type_string() }}) as category_name,
        cast(category__department as {{ dbt.type_string() }}) as department,
        upper(cast(currency as {{ dbt.type_string() }})) as currency,
        {{ minor_to_amount('price_minor', 'currency') }} as list_price,
        cast(active as boolean) as is_active,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
    from source
),

final as (
    select
        product_id,
        sku,
        product_name,
        category_id,
        category_name,
        department,
        currency,
        list_price,
        is_active,
        created_at,
        updated_at,
        load_id
    from renamed
    qualify row_number() over (
        partition by product_id
        order by updated_at desc, {{ load_order('load_id') }} desc
    ) = 1
)

select * from final
