"""The rules the spec declares (``x-gantry-*``), read from a served document into plain records.

The spec states these rules in prose for people and declares them for tools (its
``info.description``, "Declared rules"). This module only reads the declarations; ``probes.py``
turns each one into requests. Nothing here names an operation or a schema of Gantry's own: a
resource added to the spec with declarations is probed without a line of suite code.

* ``x-gantry-role-grants`` (top level): role -> the roles it may grant or take away;
* ``x-gantry-grants`` (operation): the body field that grants a role, the target's field whose
  role is taken away;
* ``x-gantry-preconditions`` (operation): the 409 ``code`` a request gets in a state (``as``,
  ``path``, ``body``, the target's ``state`` in its state machine and the requests ``given``
  first reach it);
* ``x-gantry-given`` (operation): requests made first in the workspace, so the operation can
  succeed there (a route for the AI gateway to call), in the ``given`` format of preconditions;
* ``x-gantry-state-machine`` (schema): states, transitions by operation, the refusal of the rest;
* ``x-gantry-owner`` (schema): ``workspace`` or ``user``; with ``x-gantry-resource`` (the
  schema of an id: the resource it names) a flat path's request acts in the workspace that owns
  its item (``spec.in_workspace``, which the auth matrix reads);
* ``x-gantry-audit`` (operation): the audit action a success records, read back from the
  operation named by ``x-gantry-audit-log``;
* every ``PATCH`` with a JSON object body is a partial update (the spec's convention).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from contract_tests.spec import Document, Link


@dataclass(frozen=True)
class GrantRule:
    """An operation that grants a role (a body field) or takes one away (the target's field)."""

    operation_id: str
    grants: str | None
    revokes: str | None


@dataclass(frozen=True)
class Given:
    """A request made before another: ``operation`` with the ``path``, ``query`` and ``body``
    values given (runtime expressions: ``$request.path.<name>`` of the request it prepares,
    ``$response…`` of the step before), the rest as the suite makes any request to it."""

    operation_id: str
    path: Mapping[str, Any]
    query: Mapping[str, Any]
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Precondition:
    """A request that the spec says is refused with 409 ``code`` in the state ``when``."""

    operation_id: str
    code: str
    when: str
    as_role: str
    path: Mapping[str, str]
    body: Mapping[str, Any]
    state: str | None = None  # the target's state (of its schema's state machine), if any
    given: tuple[Given, ...] = ()  # requests made first, in order


@dataclass(frozen=True)
class Transition:
    operation_id: str
    sources: tuple[str, ...]  # the states it accepts
    to: str | None  # the state it leaves; None: unchanged


@dataclass(frozen=True)
class StateMachine:
    """The states of one resource schema and the operations that move between them."""

    schema: str
    field: str
    initial: str
    refusal_status: int
    refusal_code: str
    transitions: tuple[Transition, ...]

    def paths(self) -> dict[str, tuple[Transition, ...]]:
        """Every reachable state, with the shortest run of transitions from ``initial``."""
        found: dict[str, tuple[Transition, ...]] = {self.initial: ()}
        queue = deque([self.initial])
        while queue:
            state = queue.popleft()
            for step in self.transitions:
                if state in step.sources and step.to is not None and step.to not in found:
                    found[step.to] = (*found[state], step)
                    queue.append(step.to)
        return found

    def cases(self) -> Iterator[tuple[str, Transition, bool]]:
        """(state, transition, allowed) for every transition from every reachable state."""
        for state in self.paths():
            for step in self.transitions:
                yield state, step, state in step.sources


@dataclass(frozen=True)
class Audited:
    """An operation whose success records ``action`` on ``target`` in ``workspace``."""

    operation_id: str
    action: str
    target: str  # runtime expressions, as in links
    workspace: str | None  # None: the request's (the path's, or the owner of a flat path's item)


@dataclass(frozen=True)
class Idempotent:
    """An operation that takes an ``Idempotency-Key`` header: repeated with the same key and
    body it answers the first request's resource; with another body, 409
    ``idempotency_key_reused``."""

    operation_id: str


@dataclass(frozen=True)
class Owned:
    """An operation addressing a resource that a workspace or a user owns."""

    operation_id: str
    param: str  # the path parameter naming the resource
    owner: str  # "workspace" or "user"
    producer: Link  # the link from the create that makes such a resource


# ── reading ───────────────────────────────────────────────────────────────────────────────────


def operations(doc: Document) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(METHOD, path, definition) of every operation of the document."""
    return doc.definitions()


def role_grants(doc: Document) -> dict[str, frozenset[str]]:
    declared = doc.raw.get("x-gantry-role-grants") or {}
    return {str(role): frozenset(map(str, roles)) for role, roles in declared.items()}


def grant_rules(doc: Document) -> list[GrantRule]:
    result = []
    for _, _, definition in operations(doc):
        rule = definition.get("x-gantry-grants")
        if isinstance(rule, Mapping):
            result.append(
                GrantRule(str(definition["operationId"]), rule.get("grants"), rule.get("revokes"))
            )
    return result


def preconditions(doc: Document) -> list[Precondition]:
    result = []
    for _, _, definition in operations(doc):
        for rule in definition.get("x-gantry-preconditions") or []:
            result.append(
                Precondition(
                    operation_id=str(definition["operationId"]),
                    code=str(rule["code"]),
                    when=str(rule.get("when", "")),
                    as_role=str(rule["as"]),
                    path=dict(rule.get("path") or {}),
                    body=dict(rule.get("body") or {}),
                    state=str(rule["state"]) if rule.get("state") is not None else None,
                    given=_given(rule.get("given")),
                )
            )
    return result


def given_steps(doc: Document) -> dict[str, tuple[Given, ...]]:
    """operationId -> the set-up steps the operation declares (``x-gantry-given``)."""
    return {
        str(definition["operationId"]): _given(definition["x-gantry-given"])
        for _, _, definition in operations(doc)
        if definition.get("x-gantry-given")
    }


def _given(declared: Any) -> tuple[Given, ...]:
    return tuple(
        Given(
            operation_id=str(step["operation"]),
            path=dict(step.get("path") or {}),
            query=dict(step.get("query") or {}),
            body=dict(step.get("body") or {}),
        )
        for step in declared or ()
    )


def state_machines(doc: Document) -> list[StateMachine]:
    result = []
    for name, schema in doc.raw.get("components", {}).get("schemas", {}).items():
        machine = schema.get("x-gantry-state-machine") if isinstance(schema, Mapping) else None
        if not isinstance(machine, Mapping):
            continue
        refusal = machine.get("refusal") or {}
        result.append(
            StateMachine(
                schema=str(name),
                field=str(machine["field"]),
                initial=str(machine["initial"]),
                refusal_status=int(refusal.get("status", 409)),
                refusal_code=str(refusal.get("code", "invalid_transition")),
                transitions=tuple(
                    Transition(
                        operation_id=str(t["operation"]),
                        sources=tuple(map(str, t.get("from") or ())),
                        to=str(t["to"]) if t.get("to") is not None else None,
                    )
                    for t in machine.get("transitions") or ()
                ),
            )
        )
    return result


def audited(doc: Document) -> list[Audited]:
    result = []
    for _, _, definition in operations(doc):
        rule = definition.get("x-gantry-audit")
        if isinstance(rule, Mapping):
            result.append(
                Audited(
                    operation_id=str(definition["operationId"]),
                    action=str(rule["action"]),
                    target=str(rule["target"]),
                    workspace=str(rule["workspace"]) if rule.get("workspace") else None,
                )
            )
    return result


def audit_log(doc: Document) -> str | None:
    """The operationId of the list that reads audit events back (``x-gantry-audit-log``)."""
    found = doc.raw.get("x-gantry-audit-log")
    return str(found) if found else None


def created_schema(doc: Document, operation_id: str) -> Any:
    """The JSON schema of the 201 answer of ``operation_id`` (None if it creates nothing)."""
    _, _, definition = doc.operation_by_id(operation_id)
    response = doc.resolve((definition.get("responses") or {}).get("201"))
    return ((response or {}).get("content") or {}).get("application/json", {}).get("schema")


def owned_operations(doc: Document, workspace_param: str) -> list[Owned]:
    """Operations whose last path parameter names an owned resource, with its producer."""
    links = list(doc.links())
    result = []
    for _, path, definition in operations(doc):
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if not params or params[-1] == workspace_param:
            continue
        operation_id = str(definition["operationId"])
        for link in links:
            if link.target_id != operation_id or params[-1] not in link.parameters:
                continue
            owner = doc.owner_of(created_schema(doc, link.source_id))
            if owner:
                result.append(Owned(operation_id, params[-1], owner, link))
                break
    return result


def partial_updates(doc: Document) -> list[str]:
    """operationIds of every PATCH whose body is a JSON object (the partial-update convention)."""
    result = []
    for method, _, definition in operations(doc):
        if method != "PATCH":
            continue
        body = doc.resolve(definition.get("requestBody")) or {}
        schema = doc.resolve(body.get("content", {}).get("application/json", {}).get("schema"))
        if isinstance(schema, Mapping) and schema.get("properties"):
            result.append(str(definition["operationId"]))
    return result


IDEMPOTENCY_HEADER = "idempotency-key"


def idempotent(doc: Document) -> list[Idempotent]:
    """Every operation with an ``Idempotency-Key`` header parameter (the header's convention)."""
    result = []
    for _, path, definition in operations(doc):
        shared = (doc.resolve(doc.raw["paths"][path]) or {}).get("parameters") or []
        for parameter in [*shared, *(definition.get("parameters") or [])]:
            resolved = doc.resolve(parameter) or {}
            if resolved.get("in") == "header" and (
                str(resolved.get("name", "")).lower() == IDEMPOTENCY_HEADER
            ):
                result.append(Idempotent(str(definition["operationId"])))
                break
    return result


def declared(doc: Document, workspace_param: str = "workspace_id") -> dict[str, Any]:
    """Every declaration the suite probes, by a stable name (``grants updateMember``…)."""
    found: dict[str, Any] = {}
    for rule in grant_rules(doc):
        found[f"grants {rule.operation_id}"] = rule
    for pre in preconditions(doc):
        found[f"precondition {pre.operation_id} {pre.code}"] = pre
    for machine in state_machines(doc):
        found[f"state_machine {machine.schema}"] = machine
    for owned in owned_operations(doc, workspace_param):
        found[f"ownership {owned.operation_id}"] = owned
    for operation_id in partial_updates(doc):
        found[f"partial_update {operation_id}"] = operation_id
    for rule in idempotent(doc):
        found[f"idempotency {rule.operation_id}"] = rule
    if audit_log(doc):
        for audited_rule in audited(doc):
            found[f"audit {audited_rule.operation_id}"] = audited_rule
    return found


# ── the plan: every probe the declarations call for ──────────────────────────────────────────


def plan(doc: Document, workspace_param: str = "workspace_id") -> list[str]:
    """One line per probe the suite derives from ``doc``: what it sends and what it expects."""
    lines = []
    grants = role_grants(doc)
    for rule in grant_rules(doc):
        for actor, allowed in sorted(grants.items()):
            if rule.grants:
                lines.append(
                    f"grants {rule.operation_id}: {actor} sets {rule.grants} to "
                    f"{sorted(allowed)} (others: 403 insufficient_role)"
                )
            if rule.revokes:
                lines.append(
                    f"grants {rule.operation_id}: {actor} takes {rule.revokes} away from "
                    f"{sorted(allowed)} (others: 403 insufficient_role)"
                )
    for pre in preconditions(doc):
        first = f" (given {', '.join(g.operation_id for g in pre.given)})" if pre.given else ""
        lines.append(f"precondition {pre.operation_id}: {pre.when}{first} -> 409 {pre.code}")
    for machine in state_machines(doc):
        for state, step, moves in machine.cases():
            outcome = (
                f"-> {step.to or state}"
                if moves
                else f"refused {machine.refusal_status} {machine.refusal_code}"
            )
            lines.append(
                f"state_machine {machine.schema}: {step.operation_id} in {state} {outcome}"
            )
    for owned in owned_operations(doc, workspace_param):
        lines.append(
            f"ownership {owned.operation_id}: {owned.param} of another {owned.owner} -> 404"
        )
    for operation_id in partial_updates(doc):
        lines.append(f"partial_update {operation_id}: one field at a time, the rest unchanged")
    for record in audited(doc) if audit_log(doc) else []:
        lines.append(f"audit {record.operation_id}: records {record.action} on {record.target}")
    return lines
