"""Probes of the declared rules: role grants, preconditions, state machines, ownership.

Each is a function of (world, schema, declaration) that returns findings, as the parts in
``parts.py`` are; ``rules.py`` reads the declarations. A probe puts the resource in the state a
rule speaks of, sends the request the rule is about, and expects what the rule says, with a
bounded number of requests per declaration:

* ``grants``: every member role allowed to call the operation grants (or takes away) every
  role; inside the role's grants it is served, outside it is 403 ``insufficient_role``;
* ``precondition``: the declared state and set-up (``given``), the declared request, the 409
  ``code``, and the list the resource is in unchanged;
* ``state_machine``: from every reachable state, every transition; the allowed ones are served
  and leave the declared state, the others get the declared refusal;
* ``ownership``: a resource of another workspace (or user) addressed by someone who may call the
  operation on their own: 404, and the resource unchanged;
* ``idempotency``: the same request twice with one ``Idempotency-Key`` answers the same
  resource; the key with another body, 409 ``idempotency_key_reused``.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from contract_tests import rules, spec
from contract_tests.audits import audit
from contract_tests.checks import item_key
from contract_tests.patches import partial_update
from contract_tests.probing import Probe, collection_of
from contract_tests.runner import Finding, OutOfReach
from contract_tests.world import Caller, Made, Scope, World, WorldError, evaluate
from generated.operations import Operation

DENIED = (403, "insufficient_role")


# ── role grants ───────────────────────────────────────────────────────────────────────────────


def grants(world: World, schema: Any, rule: rules.GrantRule) -> list[Finding]:
    """Every allowed member role grants and takes away every role; only its own grants pass."""
    probe = Probe(world, schema, "grants")
    op = spec.by_id(rule.operation_id)
    table = rules.role_grants(world.doc)
    scope = world.new_scope()
    actors = [r for r in spec.WORKSPACE_ROLES if spec.rank(r) >= spec.rank(op.min_role or "viewer")]
    target = _target_link(world, op)
    producer = spec.by_id(target.source_id) if target else None
    field = rule.revokes or rule.grants or ""
    roles = _roles(world, producer if (producer and rule.revokes) else op, field)
    everyone = [r for r in roles if all(r in table.get(a, ()) for a in actors)]
    base = everyone[0] if everyone else roles[0]
    for actor_role in actors:
        actor = probe.caller(scope, f"{actor_role}_pat")
        allowed = table.get(actor_role, frozenset())
        for role in roles:
            if rule.grants:  # grant ``role`` to a target holding a role everyone may change
                _grant_case(probe, op, scope, actor, producer, target, rule, base, role, allowed)
            if rule.revokes and producer is not None and target is not None:
                made = probe.make(producer, scope, changes={rule.revokes: role})
                if made is None:
                    continue
                path = _path(op, scope, made, target)
                body = _body(world, op, scope, {rule.grants: base} if rule.grants else {})
                response = probe.send(op, actor, scope, path, body)
                what = f"{actor_role} takes {rule.revokes}={role} away"
                _expect(probe, op, response, role in allowed and base in allowed, what)
    return probe.findings


def _grant_case(
    probe: Probe,
    op: Operation,
    scope: Scope,
    actor: Caller,
    producer: Operation | None,
    target: Any,
    rule: rules.GrantRule,
    base: str,
    role: str,
    allowed: frozenset[str],
) -> None:
    path = _scope_path(op, scope)
    if producer is not None and target is not None:
        made = probe.make(producer, scope, changes={str(rule.revokes or rule.grants): base})
        if made is None:
            return
        path = _path(op, scope, made, target)
    body = _body(probe.world, op, scope, {str(rule.grants): role})
    response = probe.send(op, actor, scope, path, body)
    _expect(probe, op, response, role in allowed, f"{actor.role} grants {rule.grants}={role}")


def _expect(probe: Probe, op: Operation, response: Any, allowed: bool, what: str) -> None:
    if allowed:
        probe.succeeded(response, op, what)
    else:
        probe.refused(response, op, *DENIED, what)


def _target_link(world: World, op: Operation) -> Any:
    """The link that makes the resource ``op`` addresses (None when ``op`` addresses none)."""
    params = spec.path_params(op)
    if not params or params[-1] == spec.WORKSPACE_PARAM:
        return None
    links = world.producer_links(op, params[-1])
    return links[0] if links else None


def _path(op: Operation, scope: Scope, made: Made, link: Any) -> dict[str, Any]:
    return {**_scope_path(op, scope), **{n: evaluate(e, made) for n, e in link.parameters.items()}}


def _scope_path(op: Operation, scope: Scope) -> dict[str, Any]:
    """The scope's workspace, when the path names one (a flat path's comes with its item)."""
    if spec.WORKSPACE_PARAM in spec.path_params(op):
        return {spec.WORKSPACE_PARAM: scope.workspace_id}
    return {}


def _body(world: World, op: Operation, scope: Scope, changes: dict[Any, Any]) -> Any:
    if op.request_body is None:
        return None
    body = world.body_for(op, scope)
    return {**(body or {}), **{k: v for k, v in changes.items() if k}}


def _roles(world: World, op: Operation, field: str) -> list[str]:
    """The values the spec allows for the body field ``field`` of ``op`` (an enum)."""
    prop = world.doc.request_schema(op).get("properties", {}).get(field, {})
    return [str(v) for v in world.doc.resolve(prop).get("enum", [])]


# ── preconditions ─────────────────────────────────────────────────────────────────────────────


def precondition(world: World, schema: Any, rule: rules.Precondition) -> list[Finding]:
    """The declared state and request: 409 with the declared code, and nothing changed."""
    probe = Probe(world, schema, "precondition")
    op = spec.by_id(rule.operation_id)
    scope = world.new_scope()  # nothing else changed in it
    caller = probe.caller(scope, f"{rule.as_role}_pat")
    path = _scope_path(op, scope)
    if rule.state is not None and not _reach(probe, op, scope, rule.state, path):
        return probe.findings
    for name, expression in rule.path.items():
        path[name] = _caller_value(world, caller, str(expression))
    for name in spec.path_params(op):  # the target, made as any request to the operation is
        if name not in path:
            path[name] = world.resource_for(op, name, fresh=True, scope=scope)
    if rule.given:
        try:
            world.run_given(rule.given, scope, path, f"the set-up of {rule.code}")
        except WorldError as exc:
            probe.fail(op, f"{rule.when} The set-up failed: {exc}")
            return probe.findings
    body = _body(world, op, scope, dict(rule.body))
    listing = collection_of(op)
    list_path = {k: v for k, v in path.items() if listing and k in spec.path_params(listing)}
    before = probe.items(listing, caller, scope, list_path) if listing else None
    response = probe.send(op, caller, scope, path, body)
    if probe.refused(response, op, 409, rule.code, rule.when) and listing and before is not None:
        after = probe.items(listing, caller, scope, list_path)
        if after != before:
            probe.fail(op, f"{rule.when} The request was refused, but the list changed.")
    return probe.findings


def _reach(probe: Probe, op: Operation, scope: Scope, state: str, path: dict[str, Any]) -> bool:
    """Make the resource ``op`` addresses and move it to ``state``; fill ``path`` for it."""
    link = _target_link(probe.world, op)
    machine = _machine_of(probe.world, link.source_id, state) if link is not None else None
    if link is None or machine is None:
        probe.fail(op, f"no state machine of the resource it addresses has the state {state}")
        return False
    producer = spec.by_id(link.source_id)
    made = probe.make(producer, scope)
    if made is None:
        return False
    if not all(_move(probe, s, scope, made, producer, machine) for s in machine.paths()[state]):
        return False
    path.update(_path(op, scope, made, link))
    return True


def _machine_of(world: World, producer_id: str, state: str) -> rules.StateMachine | None:
    """The state machine, with ``state``, of the resources that ``producer_id`` makes."""
    for machine in rules.state_machines(world.doc):
        if state not in machine.paths():
            continue
        for step in machine.transitions:
            link = _target_link(world, spec.by_id(step.operation_id))
            if link is not None and link.source_id == producer_id:
                return machine
    return None


def _caller_value(world: World, caller: Caller, expression: str) -> Any:
    if expression == "$caller.user_id":
        return world.accounts[str(caller.user)].id
    return expression


# ── state machines ────────────────────────────────────────────────────────────────────────────


def state_machine(world: World, schema: Any, machine: rules.StateMachine) -> list[Finding]:
    """Every transition from every reachable state: served where allowed, refused elsewhere."""
    probe = Probe(world, schema, "state_machine")
    scope = world.scope
    assert scope is not None
    paths = machine.paths()
    for state, step, allowed in machine.cases():
        op = spec.by_id(step.operation_id)
        link = _target_link(world, op)
        if link is None:
            probe.fail(op, f"{machine.schema}: no link makes the resource it moves")
            continue
        producer = spec.by_id(link.source_id)
        made = probe.make(producer, scope)
        if made is None:
            return probe.findings
        if isinstance(made.body, dict) and made.body.get(machine.field) != machine.initial:
            probe.fail(
                producer,
                f"{machine.schema}: created with {machine.field}={made.body.get(machine.field)!r}"
                f", the spec says {machine.initial!r}",
            )
        if not all(_move(probe, w, scope, made, producer, machine) for w in paths[state]):
            continue
        response = _move_response(probe, op, scope, made, producer)
        what = f"{machine.schema} in {machine.field}={state}: {step.operation_id}"
        if not allowed:
            probe.refused(response, op, machine.refusal_status, machine.refusal_code, what)
        elif probe.succeeded(response, op, what) and step.to is not None and response.content:
            body = response.json()
            if isinstance(body, dict) and machine.field in body and body[machine.field] != step.to:
                probe.fail(op, f"{what} answered {machine.field}={body[machine.field]!r}")
    return probe.findings


def _move_response(probe: Probe, op: Operation, scope: Scope, made: Made, producer: Any) -> Any:
    caller = probe.world.allowed_caller(op, scope)
    path = probe.path_to(op, scope, made, producer)
    return probe.send(op, caller, scope, path, _body(probe.world, op, scope, {}))


def _move(
    probe: Probe,
    step: rules.Transition,
    scope: Scope,
    made: Made,
    producer: Any,
    machine: rules.StateMachine,
) -> bool:
    op = spec.by_id(step.operation_id)
    response = _move_response(probe, op, scope, made, producer)
    return probe.succeeded(response, op, f"{machine.schema}: reaching {step.to}")


# ── ownership ─────────────────────────────────────────────────────────────────────────────────


def ownership(world: World, schema: Any, owned: rules.Owned) -> list[Finding]:
    """Another workspace's (user's) resource, addressed by a member of this one: 404, unchanged."""
    probe = Probe(world, schema, "ownership")
    op = spec.by_id(owned.operation_id)
    producer = spec.by_id(owned.producer.source_id)
    home = world.scope
    assert home is not None
    outsider = world.accounts["outsider"]
    if owned.owner == "workspace":  # the outsider's workspace, which no one of home is in
        created = world.send(
            "POST",
            "/workspaces",
            bearer=outsider.pat,
            json={"name": world.unique("Other"), "slug": world.unique("other").lower()},
            expect=201,
        ).json()
        other = Scope(workspace_id=created["id"], members={"owner": "outsider"}, keys={})
    else:
        other = home
    maker = _outsiders_caller(world, producer, home, other)
    made = probe.make(producer, other, caller=maker)
    if made is None:
        return probe.findings
    # The resource as its producer's link names it (every parameter of a nested path).
    named = {name: evaluate(expr, made) for name, expr in owned.producer.parameters.items()}
    listing = collection_of(op)
    list_path = {**made.request.path, **named}
    before = _item(probe, listing, maker, other, list_path, made)
    path = dict(named)
    if spec.WORKSPACE_PARAM in spec.path_params(op):
        path[spec.WORKSPACE_PARAM] = home.workspace_id
    caller = world.allowed_caller(op, home)
    response = probe.send(op, caller, home, path, _body(world, op, home, {}))
    what = f"{owned.param} of another {owned.owner}, as {caller.name}"
    if probe.refused(response, op, 404, "not_found", what) and before is not None:
        after = _item(probe, listing, maker, other, list_path, made)
        if after != before:
            probe.fail(op, f"{what}: refused, but the resource changed: {before} -> {after}")
    return probe.findings


def _outsiders_caller(world: World, producer: Operation, home: Scope, where: Scope) -> Caller:
    """A credential of the outsider that the create in ``where`` accepts (a PAT, else the
    session)."""
    pat = next(c for c in world.callers(home) if c.name == "non_member_pat")
    pat = world.resolve_role(pat, where)
    if spec.expected(producer, pat).outcome == spec.PASS:
        return pat
    return world.resolve_role(world.session_caller(world.accounts["outsider"]), where)


def _item(
    probe: Probe,
    listing: Operation | None,
    caller: Caller,
    scope: Scope,
    path: dict[str, Any],
    made: Made,
) -> Any:
    """The resource as its list shows it to its owner (None without a list)."""
    if listing is None or not isinstance(made.body, dict):
        return None
    path = {k: v for k, v in path.items() if k in spec.path_params(listing)}
    items = probe.items(listing, caller, scope, path) or []
    key = item_key(made.body)
    return next((i for i in items if item_key(i) == key), None)


def run(world: World, schema: Any, name: str) -> list[Finding]:
    """The probe of the declaration ``name`` (see ``rules.declared``) in the served document."""
    declaration = rules.declared(world.doc, spec.WORKSPACE_PARAM).get(name)
    if isinstance(declaration, rules.GrantRule):
        return grants(world, schema, declaration)
    if isinstance(declaration, rules.Precondition):
        return precondition(world, schema, declaration)
    if isinstance(declaration, rules.StateMachine):
        return state_machine(world, schema, declaration)
    if isinstance(declaration, rules.Owned):
        return ownership(world, schema, declaration)
    if isinstance(declaration, rules.Audited):
        return audit(world, schema, declaration)
    if isinstance(declaration, rules.Idempotent):
        return idempotency(world, schema, declaration)
    if isinstance(declaration, str):
        return partial_update(world, schema, declaration)
    return [Finding("declared_rules", name, "not declared in the served document")]


# ── idempotency ───────────────────────────────────────────────────────────────────────────────


def idempotency(world: World, schema: Any, rule: rules.Idempotent) -> list[Finding]:
    """One key, the same request twice: the same resource (nothing made twice); the key with
    another body: 409 ``idempotency_key_reused``."""
    probe = Probe(world, schema, "idempotency")
    op = spec.by_id(rule.operation_id)
    scope = world.new_scope()
    caller = world.allowed_caller(op, scope)
    request = world.build_request(op, caller, scope, fresh_last=False)
    if request.refusal is not None:
        raise OutOfReach(f"{spec.label(op)}: {request.refusal.why}")
    key = {"Idempotency-Key": f"probe-{secrets.token_hex(8)}"}
    first = probe.send_request(replace(request, extra_headers=key))
    if first.status_code not in spec.success_statuses(op):
        raise OutOfReach(f"{spec.label(op)} did not succeed here ({first.status_code})")
    again = probe.send_request(replace(request, extra_headers=key))
    if not probe.succeeded(again, op, "the same request with the same Idempotency-Key"):
        return probe.findings
    made, repeated = _identity(first), _identity(again)
    if made != repeated:
        probe.fail(
            op,
            f"the same request with the same Idempotency-Key made another resource: "
            f"{made} then {repeated}",
        )
    other = world.build_request(op, caller, scope, fresh_last=False)
    if other.body != request.body and other.path == request.path:
        reused = probe.send_request(replace(other, extra_headers=key))
        probe.refused(reused, op, 409, "idempotency_key_reused", "The key came with another body.")
    return probe.findings


def _identity(response: Any) -> dict[str, Any]:
    """What names the resource an answer is about: its top-level ids and its ``Location``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    found = {
        name: value
        for name, value in (body.items() if isinstance(body, dict) else ())
        if (name == "id" or name.endswith("_id")) and isinstance(value, str)
    }
    location = response.headers.get("Location")
    return {**found, "Location": location} if location else found
