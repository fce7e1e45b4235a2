"""The gateway's 409 rules hold under concurrency, on SQLite and on PostgreSQL: a backend a
route is about to use is never deleted from under it, nor a provider a backend is about to use.

Each race runs twice over: through the whole app (whose admission serialises the writers of one
workspace) and straight on the domain functions, with no workspace lock, so the row locks of
``server.storage.gateway`` alone must keep the rule. Every answer is the one the rules say:
the loser is refused with ``backend_in_use`` / ``provider_in_use``, or finds the row gone (404).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from generated import models
from server.domain import backends, providers, routes
from server.domain.errors import RuleError
from server.domain.unit import unit_of_work
from tests.reliability.conftest import RACE_TIMEOUT_S, ROUNDS, Answer, Scene, Send

Race = Callable[..., list[Answer]]


def _outcome(answer: Answer) -> tuple[int, str | None]:
    return answer.status, answer.code


class Gateway:
    """Providers, backends and routes written through the domain, as a system actor."""

    def __init__(self, scene: Scene) -> None:
        self.database = scene.database
        self.box = scene.app.extensions["gantry"].secret_box
        self._count = 0

    def run(self, work: Callable[[Any], Any]) -> Answer:
        """``work(uow)`` in a committed unit; its refusal as the status the API would give."""
        statuses = {"Conflict": 409, "NotFound": 404, "Invalid": 400, "Forbidden": 403}
        try:
            with unit_of_work(self.database.write_sessionmaker) as uow:
                work(uow)
        except RuleError as refused:
            return Answer(statuses[type(refused).__name__], refused.code)
        return Answer(200, None)

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}-{self._count}"

    def provider(self, ws: str) -> str:
        made: list[str] = []
        request = models.ProviderCreate(name=self._name("p"), type="local")
        self.run(
            lambda uow: made.append(
                providers.create_provider(uow, ws, request, secrets=self.box).id
            )
        )
        return made[0]

    def backend(self, ws: str, provider_id: str) -> str:
        made: list[str] = []
        request = models.BackendCreate(
            name=self._name("b"), provider_id=provider_id, upstream_model="m"
        )
        self.run(lambda uow: made.append(backends.create_backend(uow, ws, request).id))
        return made[0]

    def route(self, ws: str, *backend_ids: str) -> str:
        made: list[str] = []
        request = models.RouteCreate(
            name=self._name("r"),
            model_patterns=["*"],
            backends=[models.RouteBackend(backend_id=b) for b in backend_ids],
        )
        self.run(lambda uow: made.append(routes.create_route(uow, ws, request).id))
        return made[0]

    def links(self, ws: str, route_id: str) -> list[str]:
        with unit_of_work(self.database.read_sessionmaker) as uow:
            return [link.backend_id for link in routes.get_route(uow, ws, route_id).links]

    def exists(self, load: Callable[[Any], Any]) -> bool:
        return self.run(load).status == 200


def _together(*works: Callable[[], Answer]) -> list[Answer]:
    barrier = threading.Barrier(len(works), timeout=RACE_TIMEOUT_S)

    def released(work: Callable[[], Answer]) -> Answer:
        barrier.wait()
        return work()

    with ThreadPoolExecutor(max_workers=len(works)) as pool:
        futures = [pool.submit(released, work) for work in works]
        return [future.result(timeout=RACE_TIMEOUT_S) for future in futures]


def test_a_backend_is_never_deleted_while_a_route_takes_it(scene: Scene, race: Race) -> None:
    """DELETE /gateway/backends/{b} while PATCH /gateway/routes/{r} adds b."""
    admin = scene.person(superadmin=True)
    gateway = Gateway(scene)
    for round_ in range(ROUNDS):
        ws = scene.workspace({admin: "owner"})
        backend_id = gateway.backend(ws, gateway.provider(ws))
        route_id = gateway.route(ws)
        change = {"backends": [{"backend_id": backend_id}]}
        if round_ % 2 == 0:
            deleted, taken = race(
                Send(admin, "DELETE", f"/gateway/backends/{backend_id}"),
                Send(admin, "PATCH", f"/gateway/routes/{route_id}", change),
            )
        else:
            deleted, taken = _together(
                partial(
                    gateway.run,
                    partial(backends.delete_backend, workspace_id=ws, backend_id=backend_id),
                ),
                partial(
                    gateway.run,
                    partial(
                        routes.update_route,
                        workspace_id=ws,
                        route_id=route_id,
                        request=models.RouteUpdate.model_validate(change),
                    ),
                ),
            )
        if _outcome(deleted) in {(204, None), (200, None)}:
            assert _outcome(taken) == (404, "not_found"), (round_, deleted, taken)
            assert gateway.links(ws, route_id) == []
        else:
            assert _outcome(deleted) == (409, "backend_in_use"), (round_, deleted, taken)
            assert taken.status == 200, (round_, deleted, taken)
            assert gateway.links(ws, route_id) == [backend_id]


def test_a_provider_is_never_deleted_while_a_backend_takes_it(scene: Scene, race: Race) -> None:
    """DELETE /providers/{p} while POST /workspaces/{ws}/gateway/backends names p."""
    admin = scene.person(superadmin=True)
    gateway = Gateway(scene)
    for round_ in range(ROUNDS):
        ws = scene.workspace({admin: "owner"})
        provider_id = gateway.provider(ws)
        body = {"name": f"b{round_}", "provider_id": provider_id, "upstream_model": "m"}
        if round_ % 2 == 0:
            deleted, taken = race(
                Send(admin, "DELETE", f"/providers/{provider_id}"),
                Send(admin, "POST", f"/workspaces/{ws}/gateway/backends", body),
            )
        else:
            deleted, taken = _together(
                partial(
                    gateway.run,
                    partial(providers.delete_provider, workspace_id=ws, provider_id=provider_id),
                ),
                partial(
                    gateway.run,
                    partial(
                        backends.create_backend,
                        workspace_id=ws,
                        request=models.BackendCreate.model_validate(body),
                    ),
                ),
            )
        provider_left = gateway.exists(
            partial(providers.get_provider, workspace_id=ws, provider_id=provider_id)
        )
        if _outcome(deleted) in {(204, None), (200, None)}:
            assert _outcome(taken) == (404, "not_found"), (round_, deleted, taken)
            assert not provider_left
        else:
            assert _outcome(deleted) == (409, "provider_in_use"), (round_, deleted, taken)
            assert taken.status in (200, 201), (round_, deleted, taken)
            assert provider_left
