"""The flows on top of the layers below, and their command line (``python -m elt``): the batch flow
services → extract → dbt build → publish (``flow``), the fleet's launch surface (``fleet``), source
selection, the SQL shell and stream mode (``stream``). Everything they share is in ``core``; the loaders
(``extract``), dbt (``transform``) and the Parquet publish (``publish``) sit between
(tests/pytest/test_layers.py).
"""
