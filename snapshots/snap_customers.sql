{% snapshot snap_customers %}
    {{
        config(
            unique_key='customer_id',
            strategy='timestamp',
            updated_at='updated_at',
            hard_deletes='invalidate',
        )
    }}
    -- SCD2 history of the customer attributes that matter for analysis. Personal data (e-mail, names,
    -- phone, addresses) is left out on purpose: a history table would otherwise keep it after an erasure.
    -- An erased customer's open version is closed (hard_deletes = invalidate).
    with

    customers as (
        select * from {{ ref('stg_customers__customers') }}
    ),

    final as (
        select
            customer_id,
            country_code,
            has_marketing_opt_in,
            is_deleted,
            created_at,
            deleted_at,
            updated_at
        from customers
    )

    select * from final
{% endsnapshot %}
