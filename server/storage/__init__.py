"""Storage: the database handle (``db``), ORM schema (``models``), migrations and repositories."""

from server.storage.db import Database

__all__ = ["Database"]
