"""The local fleet for a Dagster run: leased when a step first needs a source, released when the run ends.

The same calls ``make elt`` makes (elt/fleet.py): a lease on the fleet of this run folder for this
process, which starts whatever is down, and a release at the end that stops only a fleet a run started,
once no other run uses it. Sources configured off this machine, and a user's own (non-embedded) sources,
are never started or stopped.

Why a resource: Dagster sets it up before the run's first step and tears it down after the last, in
the run's own process (the code location runs every job in one process, see definitions.py), so one
lease covers every extract step and the stream of a run, and a failed or terminated run still releases.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import PrivateAttr

from elt import fleet, selection

log = logging.getLogger("orchestration.fleet")


class LocalFleet(dg.ConfigurableResource):
    """Leases the local fleet for the sources a step loads (``manage=False``: like ``elt run
    --no-services``, the services are someone else's to run)."""

    manage: bool = True
    _handle: fleet.FleetHandle | None = PrivateAttr(default=None)
    _urls: dict[str, str] = PrivateAttr(default_factory=dict)  # services seen healthy in this run

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[LocalFleet]:
        try:
            yield self
        finally:
            if self._handle is not None:
                state, detail = fleet.stop(self._handle)
                log.info("fleet %s %s", state, detail)
                self._handle = None

    def ensure(self, sources: list[str]) -> None:
        """Make sure the embedded services among ``sources`` answer, leasing the fleet on the run's first
        need (the launcher starts every service that is down, as for ``make elt``); later steps only
        check their services' health. Raises ``dagster.Failure`` with the launcher's one-line reason."""
        if not self.manage:
            return
        try:
            wanted = selection.embedded(sources)
        except selection.SelectionError as exc:
            raise dg.Failure(description=f"services: {exc}") from None
        if not wanted:
            return  # a user's own source: never started or stopped here
        if set(wanted) <= set(self._urls):
            bad = fleet.unhealthy({name: self._urls[name] for name in wanted})
            if not bad:
                return
            log.info("services %s stopped answering: leasing the fleet again", ", ".join(bad))
        try:
            handle = fleet.ensure_up()
        except fleet.FleetError as exc:
            raise dg.Failure(description=f"services: {exc}") from None
        self._urls.update(handle.urls)
        if not handle.managed:
            return
        held = self._handle
        if held is None:
            self._handle = handle
        else:  # the same process leased again: still one lease, released once at the end
            held.started_services += [s for s in handle.started_services if s not in held.started_services]
