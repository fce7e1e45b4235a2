"""A session kept in use still ends at its absolute lifetime (``x-gantry-session``: 12 h
sliding, 7 d absolute in Gantry's spec).

The auth matrix has a session left idle past its idle lifetime and one past its absolute one;
either check alone would refuse the second. This probe uses a session an hour before each idle
lifetime runs out, on the suite's clock, so that only the absolute lifetime can end it, and
expects it served until then and refused after.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from contract_tests import spec
from contract_tests.probing import Probe
from contract_tests.runner import Finding
from contract_tests.sending import status_and_code
from contract_tests.world import SESSION_COOKIE, Caller, World

MARGIN = timedelta(hours=1)  # how long before its idle lifetime runs out a session is used


def session_absolute_lifetime(world: World, schema: Any) -> list[Finding]:
    """Used an hour before each idle lifetime ends, a session is served until its absolute
    lifetime and answers 401 after."""
    clock = world.target.clock
    assert clock is not None and world.scope is not None and world.session_lifetimes is not None
    idle, absolute = world.session_lifetimes
    step = idle - MARGIN
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
    shift = step
    while shift < absolute:
        with clock.shifted(shift):
            response = probe.send(op, caller, world.scope, {})
        if not probe.succeeded(response, op, f"a session in use, {shift} after sign-in"):
            return probe.findings
        shift += step
    with clock.shifted(absolute + MARGIN):
        response = probe.send(op, caller, world.scope, {})
    if status_and_code(response) != (401, "token_expired"):
        probe.refused(response, op, 401, "token_expired", f"a session in use, past {absolute}")
    return probe.findings
