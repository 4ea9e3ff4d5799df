"""The orders service (see services/README.md)."""
