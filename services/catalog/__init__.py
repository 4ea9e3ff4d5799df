"""The catalog service (see services/README.md)."""
