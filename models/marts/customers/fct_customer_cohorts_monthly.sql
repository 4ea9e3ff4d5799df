-- Monthly cohorts: customers grouped by the month of their first order; for each later month, how many
-- of them ordered again and which share of the cohort that is (retention). Cancelled orders do not
-- count as activity. Month 0 is the cohort month itself (retention 1.0).
with

orders as (
    select * from {{ ref('fct_orders') }}
    where customer_id is not null and order_status != 'cancelled'
),

activity as (
    select distinct
        customer_id,
        placed_month as activity_month
    from orders
),

cohorts as (
    select
        customer_id,
        min(activity_month) as cohort_month
    from activity
    group by customer_id
),

cohort_sizes as (
    select
        cohort_month,
        count(*) as cohort_size
    from cohorts
    group by cohort_month
),

cohort_activity as (
    select
        cohorts.cohort_month,
        activity.activity_month,
        {{ shop_date_diff('month', 'cohorts.cohort_month', 'activity.activity_month') }} as months_since_first_order,
        count(distinct activity.customer_id) as active_customers
    from activity
    inner join cohorts
        on activity.customer_id = cohorts.customer_id
    group by cohorts.cohort_month, activity.activity_month
),

final as (
    select
        cohort_activity.cohort_month,
        cohort_activity.activity_month,
        cast(cohort_activity.months_since_first_order as integer) as months_since_first_order,
        cohort_sizes.cohort_size,
        cohort_activity.active_customers,
        {{ safe_ratio('cohort_activity.active_customers', 'cohort_sizes.cohort_size') }} as retention_rate
    from cohort_activity
    inner join cohort_sizes
        on cohort_activity.cohort_month = cohort_sizes.cohort_month
)

select * from final
