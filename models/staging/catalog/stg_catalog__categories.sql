with

source as (
    select * from {{ source('catalog', 'categories') }}
    where {{ committed_loads('catalog') }}
),

renamed as (
    select
        cast(category_id as bigint) as category_id,
        cast(name as {{ dbt.type_string() }}) as category_name,
        cast(department as {{ dbt.type_string() }}) as department,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
    from source
),

final as (
    select
        category_id,
        category_name,
        department,
        load_id
    from renamed
    qualify row_number() over (
        partition by category_id
        order by {{ load_order('load_id') }} desc
    ) = 1
)

select * from final
