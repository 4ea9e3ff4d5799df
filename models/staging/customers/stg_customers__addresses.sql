{%- set raw = source('customers', 'customers__addresses') -%}
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
        cast(address_id as bigint) as address_id,
        cast(customer_id as bigint) as customer_id,
        lower(cast(kind as varchar)) as address_kind,
        cast(line1 as varchar) as street_line_1,
        cast({{ column_or_null(raw, 'line2') }} as varchar) as street_line_2,
        cast(city as varchar) as city,
        cast(postal_code as varchar) as postal_code,
        upper(cast(country as varchar)) as country_code,
        cast(is_default as boolean) as is_default,
        cast(_dlt_load_id as varchar) as load_id
    from source
),

latest as (
    select * from renamed
    qualify row_number() over (
        partition by address_id
        order by {{ load_order('load_id') }} desc
    ) = 1
),

final as (
    select
        latest.address_id,
        latest.customer_id,
        latest.address_kind,
        latest.street_line_1,
        latest.street_line_2,
        latest.city,
        latest.postal_code,
        latest.country_code,
        latest.is_default,
        latest.load_id
    from latest
    left join erased
        on latest.customer_id = erased.customer_id
    -- erased (hard-deleted) customers are gone for good, even if an old version is still in raw
    where erased.customer_id is null
)

select * from final
