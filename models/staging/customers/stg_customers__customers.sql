{%- set raw = source('customers', 'customers') -%}
with

source as (
    select * from {{ raw }}
    where {{ committed_loads('customers') }}
),

erased as (
    select * from {{ ref('stg_customers__deletions') }}
),

renamed as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(email as varchar) as email,
        cast(first_name as varchar) as first_name,
        cast(last_name as varchar) as last_name,
        cast(phone as varchar) as phone,
        upper(cast(country as varchar)) as country_code,
        cast(marketing_opt_in as boolean) as has_marketing_opt_in,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at,
        {{ to_utc(column_or_null(raw, 'deleted_at')) }} as deleted_at,
        cast(_dlt_load_id as varchar) as load_id
    from source
),

latest as (
    select * from renamed
    qualify row_number() over (
        partition by customer_id
        order by updated_at desc, {{ load_order('load_id') }} desc
    ) = 1
),

final as (
    select
        latest.customer_id,
        latest.email,
        latest.first_name,
        latest.last_name,
        latest.phone,
        latest.country_code,
        latest.has_marketing_opt_in,
        latest.created_at,
        latest.updated_at,
        latest.deleted_at,
        latest.deleted_at is not null as is_deleted,
        latest.load_id
    from latest
    left join erased
        on latest.customer_id = erased.customer_id
    -- erased (hard-deleted) customers are gone for good, even if an old version is still in raw
    where erased.customer_id is null
)

select * from final
