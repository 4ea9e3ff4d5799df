{#- Sessions from a relation or CTE of staged events (stg_events__events columns). The client's
    session_id groups events, and a gap longer than var('session_timeout_minutes') inside one session_id
    starts a new session (a tab left open overnight is two visits). Each session carries the funnel steps
    it reached and when. Shared by int_sessions (all history) and rt_funnel_live (today only). -#}
{% macro sessionize(events) -%}
    select
        session_id || '#' || cast(session_number as {{ shop_type('varchar') }}) as session_key,
        session_id,
        cast(session_number as integer) as session_number,
        any_value(anonymous_id) as anonymous_id,
        max(customer_id) as customer_id,
        min_by(device_type, event_id) as device_type,
        min_by(country_code, event_id) as country_code,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as event_count,
        min(event_id) as first_event_id,
        max(event_id) as last_event_id,
        min(occurred_at) filter (where event_type = 'product_view') as first_product_view_at,
        min(occurred_at) filter (where event_type = 'add_to_cart') as first_add_to_cart_at,
        min(occurred_at) filter (where event_type = 'checkout_started') as first_checkout_at,
        min(occurred_at) filter (where event_type = 'order_placed') as first_order_placed_at,
        count(distinct order_id) filter (where event_type = 'order_placed') as orders_placed
    from (
        select
            flagged.*,
            sum(flagged.starts_session) over (
                partition by flagged.session_id
                order by flagged.occurred_at, flagged.event_id
                rows between unbounded preceding and current row
            ) as session_number
        from (
            select
                ev.*,
                case
                    when
                        ev.occurred_at - lag(ev.occurred_at) over (
                            partition by ev.session_id order by ev.occurred_at, ev.event_id
                        ) <= {{ shop_interval(var('session_timeout_minutes'), 'minutes') }}
                        then 0
                    else 1
                end as starts_session
            from {{ events }} as ev
        ) as flagged
    ) as numbered
    group by session_id, session_number
{%- endmacro %}
