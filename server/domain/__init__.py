"""The domain layer: Gantry's business rules, one module per area.

A domain function takes a unit of work (``server.domain.unit.UnitOfWork``: the database
session, who acts, when and from where), the typed input (a generated request model or plain
values) and returns domain values (storage rows, or small value objects). It enforces the rules,
writes the audit event and raises ``server.domain.errors`` for what a caller may not do.

It knows nothing of HTTP: no Flask, no werkzeug, no status codes, no ``server.runtime``. HTTP
handlers, ``gantry bootstrap`` and background jobs call the same functions; the runtime turns
the errors into problem documents and the returned values into the documented responses.
Storage (``server.storage``) is the only code below it that issues queries.
"""
