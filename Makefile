# One entry point per job. Every target that runs project code bootstraps the locked
# environment first (`setup`), so a fresh clone needs nothing but `make elt` / `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
export RUNTIME__DLTHUB_TELEMETRY := false
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
ARGS ?=

.PHONY: help setup browser services services-stop services-status simulate extract stream dbt elt export \
        orchestrate orchestrate-run report shell docs docs-serve lint test test-faults test-all bench bench-quick clean \
        java spark-setup spark-elt test-spark

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# --compile-bytecode: this environment sets PYTHONDONTWRITEBYTECODE, so without .pyc files every process
# (each extract, dbt, publish and test subprocess) recompiled dlt/dbt from source: ~1 s CPU per import of dlt.
# Once `make spark-setup` has added the spark group, a re-sync keeps it (uv sync removes what it is not asked for).
$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --user --quiet uv==0.13.8
	@$(UV) sync --frozen --quiet --compile-bytecode $(if $(wildcard $(VENV)/.spark-synced),--group spark)
	@touch $@

# The same for the project's own modules: every `python -m extract` / `elt` / `services` process otherwise
# compiled them again (~0.15 s of each loader start, a tenth of an incremental run's fixed cost). Rebuilt
# when a source changes; a stale .pyc is only ever recompiled in memory, never used.
PROJECT_PY := $(shell find core extract transform publish elt services orchestration report bench -path bench/work -prune -o -name '*.py' -print 2>/dev/null)
$(VENV)/.compiled: $(VENV)/.synced $(PROJECT_PY)
	@$(PY) -m compileall -q -x 'bench/work' core extract transform publish elt services orchestration report bench >/dev/null
	@touch $@

setup: $(VENV)/.synced $(VENV)/.compiled ## build .venv from uv.lock (installs uv with pip when missing)

# The browser checks of `make test` (report and docs opened from files in headless Chromium) need Debian's
# chromium. Installed with apt-get only when it is missing, so a machine that has it never touches apt.
CHROMIUM := /usr/bin/chromium
browser: ## install Debian's chromium for the headless browser checks (apt-get, only when missing)
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then \
	    echo "error: $(CHROMIUM) is missing and installing it needs root: apt-get install chromium fonts-liberation" >&2; exit 1; \
	  fi; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's chromium (apt-get; once)"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null && \
	  [ -x $(CHROMIUM) ] || { echo "error: apt-get did not install $(CHROMIUM)" >&2; exit 1; }; \
	fi

# The spark target (profiles.yml `spark`, README "Scaling out"): its Python packages are the `spark` dependency
# group (dbt-spark[session], pyspark: ~480 MB of jars), not installed by default, and Spark 4 needs Java 17+,
# installed from Debian only when missing, like `make browser`.
JAVA_MAJOR = $(shell java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
java: ## install Debian's openjdk-17-jre-headless for the spark target (apt-get, only when Java 17+ is missing)
	@if [ -z "$(JAVA_MAJOR)" ] || [ "$(JAVA_MAJOR)" -lt 17 ]; then \
	  if [ "$$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then \
	    echo "error: Java 17+ is missing and installing it needs root: apt-get install openjdk-17-jre-headless" >&2; exit 1; \
	  fi; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's openjdk-17-jre-headless (apt-get; once)"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null && \
	  java -version 2>&1 | grep -q 'version "\(1[7-9]\|[2-9][0-9]\)' || { echo "error: apt-get did not install Java 17+" >&2; exit 1; }; \
	fi

$(VENV)/.spark-synced: $(VENV)/.synced
	@$(UV) sync --frozen --quiet --compile-bytecode --group spark
	@touch $@

spark-setup: setup java $(VENV)/.spark-synced ## the spark target's packages (uv group spark) and Java 17+

spark-elt: spark-setup ## the flow on Spark: extract → raw lake → dbt build --target spark → publish (ARGS=--reuse-raw)
	$(PY) -m elt.spark_flow $(ARGS)

test-spark: spark-setup ## the Spark equivalence suite: every mart on Spark equals DuckDB's (slow)
	$(VENV)/bin/pytest -m "" tests/pytest/spark $(ARGS)

services: setup ## start the five shop services (generates scale-1 data on first start; SHOP_SCALE to change)
	$(PY) -m services start $(ARGS)

services-stop: setup ## stop the fleet of this run folder (every service, whoever started it)
	$(PY) -m services stop

services-status: setup ## show the fleet's health, ports and pids
	$(PY) -m services status

simulate: setup ## apply changes to the running fleet (ARGS="--rate 50" or "--steps 500")
	$(PY) -m services.simulator $(ARGS)

extract: setup ## load the services into the raw schemas (ARGS="customers --full-refresh")
	$(PY) -m extract $(ARGS)

stream: setup ## follow the events feed in micro-batches and keep the real-time marts fresh
	$(PY) -m elt stream $(ARGS)

dbt: setup ## run dbt under the warehouse lock (ARGS="build --select marts")
	$(PY) -m elt dbt $(ARGS)

elt: setup ## the whole flow: services → extract → dbt build → Parquet publish → summary (SOURCES=a,b: load only those)
	$(PY) -m elt run $(if $(SOURCES),--sources $(SOURCES)) $(ARGS)

export: setup ## publish the marts to exports/ as Parquet with a manifest
	$(PY) -m elt export $(ARGS)

orchestrate: setup ## the Dagster UI and daemon on 127.0.0.1 (port SHOP_DAGSTER_PORT, default 3000; instance in run/dagster)
	$(PY) -m orchestration ui $(ARGS)

orchestrate-run: setup ## materialise the whole flow once with Dagster, headless; exits with the run's status
	$(PY) -m orchestration run $(ARGS)

shell: setup ## open the warehouse read-only in a SQL shell
	$(PY) -m elt shell $(ARGS)

report: setup ## publish the marts again with a fresh report: exports/current/report.html (as make export)
	$(PY) -m elt export $(ARGS)

# `--static` inlines the manifest and catalog into one page: target/index.html alone stays blank when
# opened from a file (the browser refuses to fetch manifest.json over file://).
docs: setup ## build the dbt docs site: target/static_index.html opens from a file, no server needed
	$(PY) -m elt docs $(ARGS)

DOCS_PORT ?= 8080
# dbt's own server, on loopback only; it serves target/ and never opens the warehouse (no lock taken).
docs-serve: docs ## serve the docs site on http://127.0.0.1:8080 (DOCS_PORT=8123 to change the port)
	$(VENV)/bin/dbt docs serve --host 127.0.0.1 --port $(DOCS_PORT) --no-browser

lint: setup ## ruff, sqlfluff, and the import direction between the layers (tests/pytest/test_layers.py)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -q -p no:randomly -p no:cacheprovider tests/pytest/test_layers.py
	$(PY) -m elt lint-sql

# `make test` holds one Spark case (tests/pytest/spark/test_spark_subset.py), so it installs what the spark
# target needs too: Java 17+ (only when missing) and the spark group; `make test-all` also runs the slow ones.
test: setup browser spark-setup lint ## lint, then the pytest suites in 2 workers against real services on loopback (budget: 15 min on 2 cores)
	$(VENV)/bin/pytest -m "not slow" -n 2 --dist loadgroup --no-loadscope-reorder $(ARGS)

test-faults: setup ## the whole fault suite over the full flow (long)
	$(VENV)/bin/pytest tests/pytest/faults $(ARGS)

test-all: setup browser spark-setup lint ## every suite, the slow cases of every area included (longest)
	$(VENV)/bin/pytest -m "" -n 2 --dist loadgroup --no-loadscope-reorder $(ARGS)

bench: setup ## the side-by-side benchmark; writes bench/results/
	$(PY) -m bench $(ARGS)

bench-quick: setup ## a small benchmark run (correctness checks, a few minutes)
	$(PY) -m bench --quick $(ARGS)

clean: ## remove generated data (warehouse, exports, run folder, service data)
	-$(PY) -m services stop 2>/dev/null
	rm -rf warehouse exports run data target logs
