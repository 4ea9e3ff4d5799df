"""Change over time for the shop services.

``Simulator(data_dir, seed)`` with ``step``, ``run`` and ``run_events``.
"""

from services.simulator.simulator import KINDS, Simulator

__all__ = ["KINDS", "Simulator"]
