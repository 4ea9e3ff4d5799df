"""The customers service (see services/README.md)."""
