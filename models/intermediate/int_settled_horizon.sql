{#- The assumptions the cut rests on (dbt_project.yml vars, docs/consistency.md), validated here: a typo
    must not silently become 0 seconds, which would publish orders whose other half is still in flight. -#}
{%- set seconds = {} -%}
{%- for name in ['max_commit_delay_seconds', 'settle_seconds'] -%}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.fullmatch('[0-9]+([.][0-9]+)?', value) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a non-negative number of seconds, got '" ~ value ~ "'"
        ) }}
    {%- endif -%}
    {%- do seconds.update({name: value | float}) -%}
{%- endfor -%}
{%- set services = var('consistent_cut_services') -%}
{%- if services is string or services | length == 0 -%}
    {{ exceptions.raise_compiler_error("var consistent_cut_services must be a non-empty list of service names") }}
{%- endif -%}
{%- for service in services -%}
    {%- if not modules.re.fullmatch('[a-z][a-z0-9_]*', service | string) -%}
        {{ exceptions.raise_compiler_error("var consistent_cut_services: '" ~ service ~ "' is not a service name") }}
    {%- endif -%}
{%- endfor -%}
-- One row: the consistent cut across the services the cross-service marts read. Each service's load
-- horizon is the cutoff of its newest committed load; a record stamped before (oldest horizon − max
-- commit delay) was committed before every walk of that run began, so it is in every service's raw data
-- (complete_before). An order is settled once its last change is a settle window before that
-- (settled_before): a cause in one service and its effect in another are stamped at most that far apart.
-- Null while a service of the cut has never loaded: then nothing is settled.
with

horizons as (
    select * from {{ ref('stg_ops__source_horizons') }}
),

cut_services as (
    select {{ shop_unnest(shop_string_list(services)) }} as service
),

latest as (
    select
        cut_services.service,
        max(horizons.cutoff_at) as cutoff_at
    from cut_services
    left join horizons
        on cut_services.service = horizons.service
    group by cut_services.service
),

cut as (
    select
        -- min() skips nulls: a service that never loaded must hold everything back instead
        case when count(cutoff_at) = count(*) then min(cutoff_at) end as cutoff_at,
        min_by(service, coalesce(cutoff_at, {{ shop_min_timestamp() }})) as lagging_service
    from latest
),

final as (
    select
        cutoff_at,
        lagging_service,
        cutoff_at - {{ shop_interval((seconds['max_commit_delay_seconds'] * 1000000) | int, 'microseconds') }}
            as complete_before,
        cutoff_at - {{ shop_interval(
            ((seconds['max_commit_delay_seconds'] + seconds['settle_seconds']) * 1000000) | int, 'microseconds'
        ) }} as settled_before,
        cast({{ seconds['max_commit_delay_seconds'] }} as double) as max_commit_delay_seconds,
        cast({{ seconds['settle_seconds'] }} as double) as settle_seconds,
        {{ shop_string_list(services) }} as cut_services
    from cut
)

select * from final
