{#- The model's row count must lie within [min_ratio, max_ratio] × the row count of `compare_model`
    (e.g. staging keeps every committed raw row: ratio 1; a fact has one row per order: ratio 1 to its
    staging model). Catches fan-outs from a bad join and rows silently lost by a filter. -#}
{% test row_count_ratio(model, compare_model, min_ratio=1.0, max_ratio=1.0) %}
    with

    counts as (
        select
            (select count(*) from {{ model }}) as model_rows,
            (select count(*) from {{ compare_model }}) as compare_rows
    )

    select
        model_rows,
        compare_rows
    from counts
    where
        (compare_rows = 0 and model_rows > 0)
        or (
            compare_rows > 0
            and (
                model_rows < {{ min_ratio }} * compare_rows
                or model_rows > {{ max_ratio }} * compare_rows
            )
        )
{% endtest %}
