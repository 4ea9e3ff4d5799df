"""Every use of dlt's private API and every patch of dlt, in one place, for the dlt version it was
written for (``DLT_VERSION``, checked when this module is imported).

Why one module: each use below was measured or needed (its reason is next to it), but dlt does not
promise any of them, so an upgrade can change one silently. With dlt pinned (uv.lock) the version
check turns an upgrade into one clear error naming this file; tests/pytest/extract/test_dltcompat.py
holds a test per use that fails when the behaviour relied upon changes. To upgrade dlt: run those
tests against the new version, adapt what fails, then raise ``DLT_VERSION``.

The uses:

* ``state_restored`` / ``mark_state_restored``: ``Pipeline._state_restored``, the flag ``run()`` sets
  after its one destination sync. Set by us when the local state is provably the warehouse's
  (extract/statesync.py) or already synced before a forked child's extract (extract/pipelines.py), so
  dlt skips a sync that reads the state table again.
* ``has_local_schema``: ``Pipeline._schema_storage.has_schema``, whether the working folder holds a
  schema the state names (extract/statesync.py: a state without its schemas is not current).
* ``load_storage`` / ``normalize_storage``: ``Pipeline._get_load_storage()`` and
  ``_get_normalize_storage()``, the package folders a kill can leave behind (extract/pending.py,
  extract/resume.py).
* ``stop_dlt_loops``: ``dlt.common.runtime.signals.set_received_signal`` / ``wake_all``, dlt's own stop
  flag, which its extract and load loops check in every thread (its handler runs only in the main
  thread) (extract/runner.py).
* ``install_hint_cache``: a patch. Every time dlt resolves a configuration (a pipeline, each data
  writer, each schema, each client) it asks, for every field and every provider, whether the field's
  type hint is a secret and what its inner type is, through ``typing`` introspection; py-spy put
  ``is_secret_hint`` + ``extract_inner_hint`` among the hottest Python frames of a full load
  (bench/tuning-history.md). The answers depend on the hint alone, so both are wrapped in a cache; an
  unhashable hint falls through to dlt's own function, so the answers are always dlt's.
* ``cache_partial_configuration``: a patch of one destination instance. dlt asks a destination for its
  capabilities many times per run, each time resolving a partial ``DuckDbClientConfiguration`` through
  every config provider (and, with a borrowed connection, querying the database path); py-spy showed
  it as a large share of a run that loads nothing (bench/tuning-history.md). The partial configuration
  depends only on the factory's arguments, so the first one is kept; the full client configuration
  (credentials, dataset) is still resolved per client. The override lives on the instance, not in a
  subclass: dlt records a destination's type from its class path in the pipeline state, so a subclass
  would change what existing pipelines have stored.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.storages import LoadStorage, NormalizeStorage

DLT_VERSION = "1.31.0"


class DltVersionError(RuntimeError):
    """The installed dlt is not the version this module's private uses were checked against."""


def check_version(installed: str | None = None) -> None:
    """Raise ``DltVersionError`` unless ``installed`` (default: the installed dlt) is ``DLT_VERSION``."""
    installed = installed or metadata.version("dlt")
    if installed != DLT_VERSION:
        raise DltVersionError(
            f"dlt {installed} is installed but extract/dltcompat.py was written for dlt {DLT_VERSION}: "
            "run `make setup` for the locked version, or check each use in that module against the new "
            "dlt (tests/pytest/extract/test_dltcompat.py) and then raise DLT_VERSION"
        )


check_version()


def state_restored(pipeline: dlt.Pipeline) -> bool:
    """Whether the pipeline has done its one destination sync (``run()`` skips it then)."""
    return bool(pipeline._state_restored)


def mark_state_restored(pipeline: dlt.Pipeline) -> None:
    """Mark the pipeline synced with its destination, as ``run()`` does after its own sync."""
    pipeline._state_restored = True


def has_local_schema(pipeline: dlt.Pipeline, name: str) -> bool:
    """Whether the pipeline's working folder holds schema ``name``."""
    return bool(pipeline._schema_storage.has_schema(name))


def load_storage(pipeline: dlt.Pipeline) -> LoadStorage:
    """The pipeline's load packages: new, normalized (being loaded) and loaded."""
    return pipeline._get_load_storage()


def normalize_storage(pipeline: dlt.Pipeline) -> NormalizeStorage:
    """The pipeline's extracted packages waiting for normalize."""
    return pipeline._get_normalize_storage()


def stop_dlt_loops(signum: int) -> None:
    """Raise dlt's own stop flag (checked by its extract and load loops in every thread) and wake its
    sleeps, as its signal handler does in the main thread."""
    from dlt.common.runtime import signals as dlt_signals

    dlt_signals.set_received_signal(signum)
    dlt_signals.wake_all()


def _cached(func: Callable[..., Any]) -> Callable[..., Any]:
    cache: dict[tuple, Any] = {}

    @functools.wraps(func)
    def wrapper(hint: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            key = (hint, args, tuple(sorted(kwargs.items())))
            return cache[key]
        except TypeError:  # unhashable hint: no caching
            return func(hint, *args, **kwargs)
        except KeyError:
            value = cache[key] = func(hint, *args, **kwargs)
            return value

    wrapper.__wrapped__ = func  # type: ignore[attr-defined]
    return wrapper


_hints_installed = False


def install_hint_cache() -> None:
    """Replace ``is_secret_hint`` and ``extract_inner_hint`` in every dlt module that imported them by
    name with a cached wrapper (idempotent)."""
    global _hints_installed
    if _hints_installed:
        return
    import dlt.common.configuration as configuration
    import dlt.common.configuration.providers.environ as environ
    import dlt.common.configuration.resolve as resolve
    import dlt.common.configuration.specs as specs
    import dlt.common.configuration.specs.base_configuration as base

    secret = _cached(base.is_secret_hint)
    inner = _cached(base.extract_inner_hint)
    for module in (base, resolve, environ, specs, configuration):
        if getattr(module, "is_secret_hint", None) is secret.__wrapped__:
            module.is_secret_hint = secret
        if getattr(module, "extract_inner_hint", None) is inner.__wrapped__:
            module.extract_inner_hint = inner
    _hints_installed = True


def cache_partial_configuration(dest: Destination) -> Destination:
    """``dest`` with its partial (capabilities) configuration resolved once; full ones as before."""
    resolve = dest.configuration
    lock = threading.Lock()
    cached: dict[str, Any] = {}

    def configuration(initial_config: Any, accept_partial: bool = False) -> Any:
        if not accept_partial:  # a client's own configuration: resolved every time, as dlt does
            return resolve(initial_config, accept_partial)
        with lock:  # load jobs ask from several threads at once
            if "partial" not in cached:
                cached["partial"] = resolve(initial_config, True)
            return cached["partial"]

    dest.configuration = configuration  # type: ignore[method-assign]
    return dest
