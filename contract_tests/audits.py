"""The audit probe: a successful operation records the audit event the spec declares.

For every ``x-gantry-audit`` declaration, the operation is called once, as the rest of the
suite calls it (a fresh resource for a write), and the audit log of the declared workspace,
filtered by the declared action, must hold an event on the declared target.
"""

from __future__ import annotations

from typing import Any

from contract_tests import rules, spec
from contract_tests.probing import Probe
from contract_tests.runner import Finding, OutOfReach, send_and_check
from contract_tests.world import Made, World, evaluate


def audit(world: World, schema: Any, rule: rules.Audited) -> list[Finding]:
    """Call the operation; its audit event is in the log, on its target."""
    probe = Probe(world, schema, "audit")
    op = spec.by_id(rule.operation_id)
    log = spec.by_id(str(rules.audit_log(world.doc)))
    assert world.scope is not None
    request = world.request_for(op, world.allowed_caller(op, world.scope))
    if request.refusal is not None:
        raise OutOfReach(f"no success to audit: {request.refusal.why}")
    response, found = send_and_check(schema, request)
    probe.findings.extend(found)
    if not probe.succeeded(response, op, "the audited call"):
        return probe.findings
    made = Made(request=request, body=response.json() if response.content else None)
    target = evaluate(rule.target, made)
    # By default the request's workspace: the path's, or the scope its flat path's item was made in.
    workspace = (
        evaluate(rule.workspace, made)
        if rule.workspace
        else request.path.get(spec.WORKSPACE_PARAM, request.scope.workspace_id)
    )
    owner = probe.caller(world.scope, "owner_pat")  # the owner of every workspace of the world
    events = probe.items(
        log, owner, request.scope, {spec.WORKSPACE_PARAM: workspace}, {"action": rule.action}
    )
    if events is None:
        probe.fail(log, f"the audit log of {workspace} cannot be read")
    elif not any((e.get("target") or {}).get("id") == target for e in events):
        probe.fail(op, f"a success recorded no {rule.action} event on {target}")
    return probe.findings
