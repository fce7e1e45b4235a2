"""The rules the spec declares (``x-gantry-*``), read from a served document into plain records.

The spec states these rules in prose for people and declares them for tools (its
``info.description``, "Declared rules"). This module only reads the declarations; ``probes.py``
turns each one into requests. Nothing here names an operation or a schema of Gantry's own: a
resource added to the spec with declarations is probed without a line of suite code.

* ``x-gantry-role-grants`` (top level): role -> the roles it may grant or take away;
* ``x-gantry-grants`` (operation): the body field that grants a role, the target's field whose
  role is taken away;
* ``x-gantry-preconditions`` (operation): the 409 ``code`` a request gets in a state (``as``,
  ``path``, ``body`` and the target's ``state`` in its state machine reach it);
* ``x-gantry-state-machine`` (schema): states, transitions by operation, the refusal of the rest;
* ``x-gantry-owner`` (schema): ``workspace`` or ``user``;
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

METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class GrantRule:
    """An operation that grants a role (a body field) or takes one away (the target's field)."""

    operation_id: str
    grants: str | None
    revokes: str | None


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
    workspace: str


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
    for path, item in doc.raw["paths"].items():
        for method in METHODS:
            definition = item.get(method)
            if isinstance(definition, Mapping):
                yield method.upper(), path, definition


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
                )
            )
    return result


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
                    workspace=str(rule.get("workspace", "$request.path.workspace_id")),
                )
            )
    return result


def audit_log(doc: Document) -> str | None:
    """The operationId of the list that reads audit events back (``x-gantry-audit-log``)."""
    found = doc.raw.get("x-gantry-audit-log")
    return str(found) if found else None


def owner_of_schema(doc: Document, schema: Any) -> str | None:
    """``x-gantry-owner`` of a schema, or of a schema it extends through ``allOf``."""
    schema = doc.resolve(schema)
    if not isinstance(schema, Mapping):
        return None
    if schema.get("x-gantry-owner"):
        return str(schema["x-gantry-owner"])
    for part in schema.get("allOf") or ():
        found = owner_of_schema(doc, part)
        if found:
            return found
    return None


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
            owner = owner_of_schema(doc, created_schema(doc, link.source_id))
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
    if audit_log(doc):
        for rule in audited(doc):
            found[f"audit {rule.operation_id}"] = rule
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
        lines.append(f"precondition {pre.operation_id}: {pre.when} -> 409 {pre.code}")
    for machine in state_machines(doc):
        for state, step, allowed in machine.cases():
            outcome = (
                f"-> {step.to or state}"
                if allowed
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
    for rule in audited(doc) if audit_log(doc) else []:
        lines.append(f"audit {rule.operation_id}: records {rule.action} on {rule.target}")
    return lines
