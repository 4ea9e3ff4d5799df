"""The payments service (see services/README.md)."""
