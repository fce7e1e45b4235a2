"""A session kept in use still ends at its absolute lifetime (``12 h sliding, 7 d absolute``).

The auth matrix has a session left idle past 12 hours and one past 7 days; either check alone
would refuse the second. This probe uses a session every 11 hours on the suite's clock, so that
only the absolute lifetime can end it, and expects it served until then and refused after.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from contract_tests import spec
from contract_tests.probing import Probe, status_and_code
from contract_tests.runner import Finding
from contract_tests.world import SESSION_COOKIE, SESSION_IDLE, SESSION_LIFETIME, Caller, World

STEP = SESSION_IDLE - timedelta(hours=1)


def session_absolute_lifetime(world: World, schema: Any) -> list[Finding]:
    """Used every 11 hours, a session is served for 7 days and answers 401 after."""
    clock = world.target.clock
    assert clock is not None and world.scope is not None
    op = next(
        op
        for op in spec.operations()
        if op.method == "GET"
        and not spec.path_params(op)
        and spec.accepts_session(op)
        and not spec.is_public(op)
        and op.min_role in ("any", "user", "session")
    )
    probe = Probe(world, schema, "session_lifetime")
    owner = world.accounts["owner"]
    cookie = world.login(owner.email, owner.password)
    caller = Caller("kept_session", "session", world.csrf_headers(), {SESSION_COOKIE: cookie})
    shift = STEP
    while shift < SESSION_LIFETIME:
        with clock.shifted(shift):
            response = probe.send(op, caller, world.scope, {})
        if not probe.succeeded(response, op, f"a session in use, {shift} after sign-in"):
            return probe.findings
        shift += STEP
    with clock.shifted(SESSION_LIFETIME + timedelta(hours=1)):
        response = probe.send(op, caller, world.scope, {})
    if status_and_code(response) != (401, "token_expired"):
        probe.refused(response, op, 401, "token_expired", "a session in use, past 7 days")
    return probe.findings
