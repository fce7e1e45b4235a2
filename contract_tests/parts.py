"""The suite's own tests, as functions of (world, schema, operation): each returns findings.

They are plain functions so that the pytest modules and the planted-fault self-test run the
same code. Every request goes through ``runner.send_and_check``, so besides the expectation each
part states, every registered check judges every response.

* ``auth_row``: one cell of the auth matrix, operation x caller, expected from the spec.
* ``csrf_row``: a cookie-session write without the CSRF header (or with a foreign Origin).
* ``lifecycle``: create -> read -> update -> list contains it -> delete -> read is 404, along the
  links of one create operation.
* ``pagination_walk``: seed a list through its sibling create, then walk it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from schemathesis.core.failures import FailureGroup

from contract_tests import checks, spec
from contract_tests.runner import ContractViolation, Finding, findings_from, send_and_check
from contract_tests.sending import call_case, make_case, status_and_code, validate_case
from contract_tests.world import Caller, Made, Request, World, WorldError, evaluate
from generated.operations import Operation

SEED_ITEMS = 5  # a list gets at least this many items before it is walked


# ── auth matrix ───────────────────────────────────────────────────────────────────────────────


def auth_row(world: World, schema: Any, op: Operation, caller_name: str) -> list[Finding]:
    """Send a valid request to ``op`` as ``caller_name``; the answer must be the spec's."""
    caller = caller_named(world, caller_name)
    if caller.unavailable:
        return []
    request = world.request_for(op, caller)
    expectation = spec.expected(op, request.caller)
    response, findings = send_and_check(schema, request)
    status, code = status_and_code(response)
    label = spec.label(op)
    # An envelope without codes (``x-gantry-error-format: anthropic``) is judged by its status.
    codeless = code is None and world.doc.error_format(op) is not None
    if expectation.outcome == spec.PASS and request.refusal is not None:
        # Served, but a success is out of reach here: past the auth checks, the refusal is
        # the state machine's (``World.state_refusal`` says why).
        ok = (status, code) == (request.refusal.status, request.refusal.code)
    elif expectation.outcome == spec.PASS:
        ok = 200 <= status < 300 or (status == 429 and "429" in spec.documented_statuses(op))
    else:  # no code expected: any the spec documents for the status (``problem_details``)
        ok = status == int(expectation.outcome) and (expectation.code in (None, code) or codeless)
    if not ok:
        got = f"{status} {code}" if code else str(status)
        said = str(expectation)
        if expectation.outcome == spec.PASS and request.refusal is not None:
            refusal = request.refusal
            said = f"pass, that is {refusal.status} {refusal.code} ({refusal.why})"
        finding = Finding("auth_matrix", label, f"{caller_name}: the spec says {said}, got {got}")
        if str(status) == expectation.outcome and code is None and findings:
            findings.append(finding)  # the right status, but no problem body: the checks say so
        else:
            findings.insert(0, finding)
    return findings


def caller_named(world: World, name: str) -> Caller:
    for caller in world.callers():
        if caller.name == name:
            return caller
    raise KeyError(name)


# ── CSRF ──────────────────────────────────────────────────────────────────────────────────────

CSRF_VARIANTS = ("no_requested_with", "foreign_origin")


def csrf_operations() -> list[Operation]:
    """Unsafe operations that accept the cookie session (the CSRF rule applies to them)."""
    return [
        op
        for op in spec.operations()
        if op.method in spec.UNSAFE and spec.accepts_session(op) and not spec.is_public(op)
    ]


def csrf_row(world: World, schema: Any, op: Operation, variant: str) -> list[Finding]:
    """A cookie write without the CSRF header, or from a foreign Origin: 403 ``csrf_failed``."""
    owner = world.accounts["owner"]
    caller = world.session_caller(owner)
    request = world.request_for(op, caller)
    headers = dict(request.caller.headers)
    if variant == "no_requested_with":
        headers.pop("X-Requested-With", None)
    else:
        headers["Origin"] = "https://attacker.example"
    request = replace(request, caller=replace(request.caller, headers=headers))
    response, findings = send_and_check(schema, request)
    status, code = status_and_code(response)
    if (status, code) != (403, "csrf_failed"):
        findings.insert(
            0,
            Finding(
                "csrf",
                spec.label(op),
                f"cookie session with {variant.replace('_', ' ')}: expected 403 csrf_failed, "
                f"got {status} {code or ''}".rstrip(),
            ),
        )
    return findings


# ── lifecycle along links ─────────────────────────────────────────────────────────────────────


def lifecycle_operations(document: spec.Document) -> list[Operation]:
    """Creates (201) whose links hand the new resource's id to other operations."""
    result = []
    for op in spec.operations():
        if 201 not in spec.success_statuses(op):
            continue
        links = [link for link in document.links() if link.source_id == op.operation_id]
        if any(_own_param(link) for link in links):
            result.append(op)
    return result


def _own_param(link: Any) -> str | None:
    """The link parameter that carries the created resource's id (``$response.body#/...``)."""
    for name, expression in link.parameters.items():
        if str(expression).startswith("$response.body#"):
            return str(name)
    return None


class _Chain:
    def __init__(self, world: World, schema: Any, create: Operation) -> None:
        self.world, self.schema, self.create = world, schema, create
        self.findings: list[Finding] = []
        assert world.scope is not None
        self.scope = world.scope

    def send(self, op: Operation, path: Mapping[str, Any], body: Any = None) -> Any:
        caller = self.world.allowed_caller(op, self.scope)
        request = Request(
            op=op,
            caller=self.world.resolve_role(caller, self.scope),
            path=dict(path),
            query={},
            body=body,
            scope=self.scope,
        )
        response, found = send_and_check(self.schema, request)
        self.findings.extend(found)
        return response

    def expect(self, response: Any, op: Operation, statuses: list[int], what: str) -> bool:
        if response.status_code in statuses:
            return True
        status, code = status_and_code(response)
        self.findings.append(
            Finding(
                "lifecycle",
                spec.label(op),
                f"{what} ({spec.label(self.create)} chain): expected "
                f"{'/'.join(map(str, statuses))}, got {status} {code or ''}".rstrip(),
            )
        )
        return False


def lifecycle(world: World, schema: Any, create: Operation) -> list[Finding]:
    """create -> read -> update -> list contains it -> delete -> read is 404."""
    chain = _Chain(world, schema, create)
    caller = world.allowed_caller(create, chain.scope)
    request = world.build_request(create, caller, chain.scope, fresh_last=False)
    created, found = send_and_check(schema, request)
    chain.findings.extend(found)
    if not chain.expect(created, create, spec.success_statuses(create), "create"):
        return chain.findings
    made = Made(request=request, body=created.json())
    links = [link for link in world.doc.links() if link.source_id == create.operation_id]
    targets: list[tuple[Operation, dict[str, Any]]] = []
    own_field: str | None = None
    for link in links:
        op = spec.by_id(link.target_id)
        params = {name: evaluate(expr, made) for name, expr in link.parameters.items()}
        if set(params) != set(spec.path_params(op)):
            continue
        targets.append((op, params))
        own = _own_param(link)
        if own and own_field is None:
            own_field = str(link.parameters[own]).split("#", 1)[1].strip("/")
    reads = [(op, p) for op, p in targets if op.method == "GET"]
    updates = [(op, p) for op, p in targets if op.method in ("PATCH", "PUT")]
    deletes = [(op, p) for op, p in targets if op.method == "DELETE"]
    for op, params in reads:  # read
        chain.expect(chain.send(op, params), op, [200], "read after create")
    for op, params in updates:  # update
        body = world.body_for(op, chain.scope)
        response = chain.send(op, params, body)
        updated = chain.expect(response, op, spec.success_statuses(op), "update")
        if updated and isinstance(body, Mapping):
            _reflects(chain, op, body, response.json(), "the answer")
        for read, read_params in reads:
            if spec.is_list(read):
                continue
            again = chain.send(read, read_params)
            kept = chain.expect(again, read, [200], "read after update") and updated
            same_item = spec.spec_path(read) == spec.spec_path(op)  # not a version of it, say
            if kept and same_item and isinstance(body, Mapping):  # kept, not only answered
                _reflects(chain, read, body, again.json(), "a read after it")
    collection = _collection_list(create)
    identity = made.body.get(own_field) if own_field and isinstance(made.body, dict) else None
    if collection is not None and identity is not None and own_field:  # list contains it
        path = {k: v for k, v in request.path.items() if k in spec.path_params(collection)}
        items = _all_items(chain, collection, path)
        if items is not None and not any(i.get(own_field) == identity for i in items):
            chain.findings.append(
                Finding(
                    "lifecycle",
                    spec.label(collection),
                    f"{identity} created by {spec.label(create)} is not in the list",
                )
            )
    if not deletes:
        return chain.findings
    op, params = deletes[0]  # delete
    if not chain.expect(chain.send(op, params), op, spec.success_statuses(op), "delete"):
        return chain.findings
    for target, target_params in targets:  # every linked operation now answers 404
        body = world.body_for(target, chain.scope) if target.request_body is not None else None
        chain.expect(chain.send(target, target_params, body), target, [404], "after delete")
    if collection is not None and identity is not None and own_field:
        path = {k: v for k, v in request.path.items() if k in spec.path_params(collection)}
        items = _all_items(chain, collection, path) or []
        still = [i for i in items if i.get(own_field) == identity]
        before = made.body.get("status") if isinstance(made.body, dict) else None
        if still and all(i.get("status") == before for i in still):
            chain.findings.append(
                Finding(
                    "lifecycle",
                    spec.label(collection),
                    f"{identity} is still listed, unchanged, after {spec.label(op)}",
                )
            )
    return chain.findings


def _reflects(chain: _Chain, op: Operation, sent: Mapping[str, Any], got: Any, where: str) -> None:
    """Every scalar field sent in an update and present in ``got`` holds the sent value."""
    if not isinstance(got, dict):
        return
    for name, value in sent.items():
        if name not in got:
            continue
        if isinstance(value, Mapping) and isinstance(got[name], dict):
            _reflects(chain, op, value, got[name], where)
        elif not isinstance(value, (dict, list)) and got[name] != value:
            chain.findings.append(
                Finding(
                    "lifecycle",
                    spec.label(op),
                    f"update sent {name}={value!r} but {where} has {got[name]!r}",
                )
            )


def _collection_list(create: Operation) -> Operation | None:
    for op in spec.operations():
        if op.method == "GET" and op.path == create.path and spec.is_list(op):
            return op
    return None


def _all_items(
    chain: _Chain, op: Operation, path: Mapping[str, Any]
) -> list[dict[str, Any]] | None:
    caller = chain.world.allowed_caller(op, chain.scope)
    request = Request(
        op=op,
        caller=chain.world.resolve_role(caller, chain.scope),
        path=dict(path),
        query={"limit": _max_limit(op)},
        body=None,
        scope=chain.scope,
    )
    items: list[dict[str, Any]] = []
    for _ in range(1000):
        response, found = send_and_check(chain.schema, request)
        chain.findings.extend(found)
        if not chain.expect(response, op, [200], "list"):
            return None
        page = response.json()
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        request = replace(request, query={**request.query, "cursor": page["next_cursor"]})
    return items


def _max_limit(op: Operation) -> int:
    param = spec.query_param(op, "limit")
    return int((param.schema or {}).get("maximum", 50)) if param is not None else 50


# ── pagination ────────────────────────────────────────────────────────────────────────────────


def seed_list(world: World, op: Operation) -> None:
    """Give the list at least SEED_ITEMS items through its sibling create (POST, same path)."""
    assert world.scope is not None
    for create in spec.operations():
        if (
            create.method == "POST"
            and create.path == op.path
            and 201 in spec.success_statuses(create)
        ):
            for _ in range(SEED_ITEMS):
                world.call_as_allowed(create, world.scope)


def pagination_walk(world: World, schema: Any, op: Operation, order: str | None) -> list[Finding]:
    """Walk ``op``'s list (in ``order``) with a small limit; every rule of the convention holds."""
    assert world.scope is not None
    caller = world.allowed_caller(op, world.scope)
    request = world.build_request(op, caller, world.scope, fresh_last=False)
    query: dict[str, Any] = {"limit": 2}
    if spec.query_param(op, "include_total") is not None:
        query["include_total"] = "true"
    if order is not None:
        query["order"] = order
    request = replace(request, query={**request.query, **query})
    case = make_case(schema, request)
    auth = {**request.caller.headers}
    if request.caller.cookies:
        auth["Cookie"] = "; ".join(f"{k}={v}" for k, v in request.caller.cookies.items())
    label = spec.label(op)
    try:
        response = call_case(case, headers=None)
        validate_case(case, response, light=False)
        if response.status_code != 200:
            return [Finding("pagination", label, f"first page answered {response.status_code}")]
        checks.walk_list(case, auth, limit=2)
    except ContractViolation as exc:
        return list(exc.findings)
    except (AssertionError, FailureGroup) as exc:  # a check failed on a page (a 500 too)
        found = findings_from(exc, label)
        return [f if f.check != "assertion" else replace(f, check="pagination") for f in found]
    return []


__all__ = [
    "CSRF_VARIANTS",
    "WorldError",
    "auth_row",
    "csrf_operations",
    "csrf_row",
    "lifecycle",
    "lifecycle_operations",
    "pagination_walk",
    "seed_list",
]
