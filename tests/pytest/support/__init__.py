"""What the suites share (ports today; environments, fleets and worlds move here next): one definition
each, imported by the suites, never from a conftest.py (pytest loads those itself)."""
