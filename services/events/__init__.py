"""The events service (see services/README.md)."""
