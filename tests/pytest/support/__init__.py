"""What the suites share, one definition each, imported by the suites and never from a conftest.py
(pytest loads those itself):

* ``paths``: the repository root;
* ``ports``: free port bases for fleets, a free port for a server, a closed port for a service that is down;
* ``sources``: the embedded source files every suite loads, and the base of every child's environment;
* ``envs``: an isolated project (warehouse, exports, run folder, dbt target) for a child or this process;
* ``workspace``: a project pointed at a fleet, and running the real commands in it with their output kept;
* ``world``: the one loaded world the dbt, fault, orchestration and consumers suites share;
* ``fingerprints``: the comparison of a warehouse and its published version with a clean run.
"""
