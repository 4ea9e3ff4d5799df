{#- The total of a money column equals the total of a column in another model (optionally filtered), to
    the cent: a mart that re-aggregates a fact must not gain or lose money. -#}
{% test sums_match(model, column_name, compare_model, compare_column, compare_where='true', tolerance=0) %}
    with

    totals as (
        select
            (select coalesce(sum({{ column_name }}), 0) from {{ model }}) as model_total,
            (
                select coalesce(sum({{ compare_column }}), 0)
                from {{ compare_model }}
                where {{ compare_where }}
            ) as compare_total
    )

    select
        model_total,
        compare_total
    from totals
    where abs(model_total - compare_total) > {{ tolerance }}
{% endtest %}
