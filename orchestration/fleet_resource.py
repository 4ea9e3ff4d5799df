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

from elt import fleet

log = logging.getLogger("orchestration.fleet")


class LocalFleet(dg.ConfigurableResource):
    """Leases the local fleet for the sources a step loads (``manage=False``: like ``elt run
    --no-services``, the services are someone else's to run)."""

    manage: bool = True
    _handle: fleet.FleetHandle | None = PrivateAttr(default=None)

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
        """Make sure the embedded services among ``sources`` answer (starting the fleet on a first
        need); raises ``dagster.Failure`` with the launcher's one-line reason."""
        if not self.manage:
            return
        try:
            handle = fleet.ensure_up(sources)
        except fleet.FleetError as exc:
            raise dg.Failure(description=f"services: {exc}") from None
        if not handle.managed:
            return
        if self._handle is None:
            self._handle = handle
        else:  # the same process leased again: one lease, one release at the end
            self._handle.started_services += [
                s for s in handle.started_services if s not in self._handle.started_services
            ]
