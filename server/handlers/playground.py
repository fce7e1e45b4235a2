"""playground: try a prompt against a model through the workspace's AI gateway."""

from __future__ import annotations

from contextlib import AbstractContextManager

from server.domain import playground
from server.domain.unit import UnitOfWork, unit_of_work
from server.runtime.context import AfterCommit, Request


def run_playground(req: Request) -> AfterCommit | playground.Result:
    """Render, record the run, then (its transaction ended) call the model and finish it; a
    repeated ``Idempotency-Key`` answers the first call's result."""
    assert req.principal is not None
    principal, state = req.principal, req.state
    prepared = playground.prepare(
        req.work,
        req.path["workspace_id"],
        req.body,
        credential_id=principal.credential_id,
        secrets_box=state.secret_box,
        idempotency_key=req.headers.get("Idempotency-Key"),
    )
    if isinstance(prepared, playground.Result):
        return prepared

    def units() -> AbstractContextManager[UnitOfWork]:
        return unit_of_work(state.database.write_sessionmaker, principal, now=state.clock())

    return AfterCommit(lambda: playground.execute(prepared, engine=state.gateway, units=units))
