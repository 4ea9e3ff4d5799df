"""``python -m extract init``: a first source file, dbt sources and staging models for a new service.

``guess`` reads an OpenAPI document and ``sample`` one answer of the service into a ``draft.SourceDraft``
(values plus the reason for each guess); ``render`` writes it as ``sources/<name>.yml`` with every guess
in a comment; ``dbtfiles`` writes the dbt side from the validated file; ``cli`` puts them together and
refuses to overwrite what exists.
"""
