"""Memoize dlt's type-hint introspection during config resolution (pure functions, called very often).

Why: every time dlt resolves a configuration (a pipeline, each data writer, each schema, each client)
it asks, for every field and every provider, whether the field's type hint is a secret and what its
inner type is. Those answers depend on the hint alone, yet each is recomputed through ``typing``
introspection (``get_origin``, ``get_args``, ``Annotated`` unwrapping): py-spy put
``is_secret_hint`` + ``extract_inner_hint`` at about 8 % of the Python (GIL-holding) time of a full
scale-1 load. ``install()`` wraps both in a cache keyed by the hint and flags; an unhashable hint
falls through to dlt's own function, so the answers are always dlt's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_installed = False


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


def install() -> None:
    """Replace the two functions in every dlt module that imported them by name (idempotent)."""
    global _installed
    if _installed:
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
    _installed = True
