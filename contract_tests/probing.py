"""What every rule probe needs: send a request as someone, make a resource, state a finding.

Every request goes through ``runner.send_and_check``, so each probe's responses are also judged
by every registered check, as the rest of the suite's are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from contract_tests import spec
from contract_tests.runner import Finding, send_and_check
from contract_tests.sending import status_and_code
from contract_tests.world import Caller, Made, Request, Scope, World, WorldError, evaluate
from generated.operations import Operation


def collection_of(op: Operation) -> Operation | None:
    """The list whose items the operation's path addresses (its path without the last segment),
    or for a create the list on its own path."""
    parent = spec.spec_path(op).rsplit("/", 1)[0]
    own = spec.spec_path(op) if op.method == "POST" else None
    for other in spec.operations():
        if other.method == "GET" and spec.is_list(other) and spec.spec_path(other) == parent:
            return other
    for other in spec.operations():
        if other.method == "GET" and spec.is_list(other) and spec.spec_path(other) == own:
            return other
    return None


def reader_of(op: Operation) -> Operation | None:
    """A GET on the same path as ``op`` (reads what it changes), if the spec has one."""
    for other in spec.operations():
        if other.method == "GET" and other.path == op.path and not spec.is_list(other):
            return other
    return None


class Probe:
    """One probe's requests and findings, under the name of the check it reports as."""

    def __init__(self, world: World, schema: Any, check: str) -> None:
        self.world, self.schema, self.check = world, schema, check
        self.findings: list[Finding] = []

    def fail(self, op: Operation, message: str) -> None:
        self.findings.append(Finding(self.check, spec.label(op), message))

    def caller(self, scope: Scope, name: str) -> Caller:
        for caller in self.world.callers(scope):
            if caller.name == name:
                return caller
        raise WorldError(f"no caller {name}")

    def send(
        self,
        op: Operation,
        caller: Caller,
        scope: Scope,
        path: Mapping[str, Any],
        body: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        request = Request(
            op=op,
            caller=self.world.resolve_role(caller, scope),
            path=dict(path),
            query=dict(query or {}),
            body=body,
            scope=scope,
        )
        response, found = send_and_check(self.schema, request)
        self.findings.extend(found)
        return response

    def send_request(self, request: Request) -> Any:
        """Send a request built elsewhere (``World.build_request``), its findings kept."""
        response, found = send_and_check(self.schema, request)
        self.findings.extend(found)
        return response

    def succeeded(self, response: Any, op: Operation, what: str) -> bool:
        if response.status_code in spec.success_statuses(op):
            return True
        status, code = status_and_code(response)
        self.fail(op, f"{what}: expected {spec.success_statuses(op)}, got {status} {code or ''}")
        return False

    def refused(self, response: Any, op: Operation, status: int, code: str, what: str) -> bool:
        got = status_and_code(response)
        if got == (status, code):
            return True
        self.fail(op, f"{what}: expected {status} {code}, got {got[0]} {got[1] or ''}".rstrip())
        return False

    def make(
        self,
        producer: Operation,
        scope: Scope,
        *,
        caller: Caller | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> Made | None:
        """Call a create as ``caller`` (default: one the spec lets in), body ``changes`` applied."""
        caller = caller or self.world.allowed_caller(producer, scope)
        request = self.world.build_request(producer, caller, scope, fresh_last=False)
        if changes:
            request = replace(request, body={**(request.body or {}), **changes})
        response = self.send(producer, request.caller, scope, request.path, request.body)
        if not self.succeeded(response, producer, "making the resource to probe"):
            return None
        return Made(request=request, body=response.json() if response.content else None)

    def path_to(
        self, op: Operation, scope: Scope, made: Made, producer: Operation
    ) -> dict[str, Any]:
        """Path parameters of ``op`` for the resource ``made`` by ``producer`` (along links)."""
        values: dict[str, Any] = {}
        for link in self.world.doc.links():
            if link.source_id == producer.operation_id and link.target_id == op.operation_id:
                values = {name: evaluate(expr, made) for name, expr in link.parameters.items()}
                break
        if spec.WORKSPACE_PARAM in spec.path_params(op):
            values.setdefault(spec.WORKSPACE_PARAM, scope.workspace_id)
        return values

    def items(
        self,
        op: Operation,
        caller: Caller,
        scope: Scope,
        path: Mapping[str, Any],
        filters: Mapping[str, Any] | None = None,
    ) -> list[Any] | None:
        """Every item of a list (largest pages), or None when it cannot be read."""
        limit = spec.query_param(op, "limit")
        query: dict[str, Any] = {"limit": int((limit.schema or {}).get("maximum", 50))}
        query.update(filters or {})
        found: list[Any] = []
        for _ in range(100):
            response = self.send(op, caller, scope, path, query=query)
            if response.status_code != 200:
                return None
            page = response.json()
            found.extend(page["items"])
            if page["next_cursor"] is None:
                return found
            query = {**query, "cursor": page["next_cursor"]}
        return found
