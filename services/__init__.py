"""The shop's five microservices: the embedded source systems the ELT flow extracts from.

Each service is a FastAPI app over its own SQLite file; `services.launcher` runs them as a fleet.
"""
