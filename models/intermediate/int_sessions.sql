-- Every session in the clickstream with the funnel steps it reached (see macros/sessionize.sql for the
-- session rules).
with

events as (
    select * from {{ ref('stg_events__events') }}
),

sessions as (
    {{ sessionize('events') }}
)

select * from sessions
