"""The contract suite's tests. ``test_contract.py`` (SQLite, or a live server) and
``test_contract_postgresql.py`` import them; the fixtures are in ``conftest.py``.

Every test is parametrized from the spec (``generated.operations.OPERATIONS`` and the served
document), never from a list of operations kept here. In file order:

1. the auth matrix: every operation x every caller gets exactly what its security and
   ``x-gantry-min-role`` say (401 / 403 / 404 / served);
2. CSRF: every cookie-authenticated write without the CSRF header, or from a foreign Origin, is
   refused with 403 ``csrf_failed``;
3. lifecycle: for every create with links, create -> read -> update -> list contains it ->
   delete -> read is 404;
4. pagination: every list, seeded through its create, walked with a small limit, with its item
   count and with one less;
   then the rules the spec declares (``x-gantry-*``, read by ``rules.py``, driven by
   ``probes.py``), and a session kept in use ending at its absolute lifetime (``lifetimes.py``);
5. schemathesis's engine over every operation: examples, coverage and fuzzing (positive and
   negative data) and the stateful phase along the spec's links; then one item per operation
   that reports its cases and findings, and the run-level verdict (every operation answered
   2xx at least once, over everything above), but for the operations whose success the spec
   puts out of reach, which one item names, as a skip that says why.

Every request of every part is judged by every registered check (``checks.py`` and the
schemathesis built-ins).
"""

from __future__ import annotations

from typing import Any

import pytest

from contract_tests import checks, lifetimes, parts, probes, rules, runner, spec
from contract_tests.runner import ContractViolation, Finding, OutOfReach
from contract_tests.world import CALLER_NAMES

OPERATIONS = spec.operations()
LABELS = [spec.label(op) for op in OPERATIONS]


def _fail(findings: list[Finding]) -> None:
    if findings:
        raise ContractViolation(findings)


@pytest.mark.parametrize("caller", CALLER_NAMES)
@pytest.mark.parametrize("op", OPERATIONS, ids=LABELS)
def test_auth_matrix(contract: Any, op: Any, caller: str) -> None:
    unavailable = parts.caller_named(contract.world, caller).unavailable
    if unavailable:
        pytest.skip(f"{caller}: {unavailable}")
    _fail(parts.auth_row(contract.world, contract.schema, op, caller))


@pytest.mark.parametrize("variant", parts.CSRF_VARIANTS)
@pytest.mark.parametrize("op", parts.csrf_operations(), ids=spec.label)
def test_cookie_writes_need_csrf(contract: Any, op: Any, variant: str) -> None:
    _fail(parts.csrf_row(contract.world, contract.schema, op, variant))


@pytest.mark.parametrize("op", parts.lifecycle_operations(spec.local_document()), ids=spec.label)
def test_lifecycle(contract: Any, op: Any) -> None:
    _fail(parts.lifecycle(contract.world, contract.schema, op))


@pytest.mark.parametrize("order", [None, "asc"], ids=["default-order", "asc"])
@pytest.mark.parametrize("op", spec.list_operations(), ids=spec.label)
def test_pagination(contract: Any, op: Any, order: str | None) -> None:
    if order is not None and spec.query_param(op, "order") is None:
        pytest.skip("the list has no order parameter")
    if order is None:
        parts.seed_list(contract.world, op)
    _fail(parts.pagination_walk(contract.world, contract.schema, op, order))


@pytest.mark.parametrize("name", sorted(rules.declared(spec.local_document())))
def test_declared_rule(contract: Any, name: str) -> None:
    """A rule the spec declares (``x-gantry-*``) holds: ``probes.py`` drives it."""
    try:
        _fail(probes.run(contract.world, contract.schema, name))
    except OutOfReach as exc:
        pytest.skip(str(exc))


def test_session_lifetime_is_absolute(contract: Any) -> None:
    """A session kept in use still ends at its absolute lifetime (the suite's clock)."""
    if contract.target.clock is None:
        pytest.skip("needs the server's clock (in-process only)")
    if contract.world.session_lifetimes is None:
        pytest.skip("the spec declares no session lifetimes (x-gantry-session)")
    _fail(lifetimes.session_absolute_lifetime(contract.world, contract.schema))


@pytest.mark.parametrize("op", OPERATIONS, ids=LABELS)
def test_engine(contract: Any, op: Any) -> None:
    """Examples, coverage, fuzzing and stateful cases of this operation kept the contract."""
    report = contract.engine_report()
    label = spec.label(op)
    print(f"{label}: {report.cases[label]} cases ({report.negative[label]} negative)")
    findings = [f for f in report.findings if f.operation == label]
    assert report.cases[label] > 0, f"{label}: the engine sent no case"
    assert report.negative[label] > 0, f"{label}: no negative (invalid) case was sent"
    _fail(findings)


def test_engine_cases_per_operation(contract: Any) -> None:
    """Print how many cases ran per operation and phase (shown in the terminal summary)."""
    report = contract.engine_report()
    print(
        f"[{contract.name}] schemathesis engine: {sum(report.cases.values())} cases in "
        f"{report.seconds:.0f} s, seed {contract.seed}"
    )
    origin = contract.target.api_url
    own = {label: n for (where, label), n in runner.SENT.items() if where == origin}
    print(report.table(LABELS, own))
    unknown = [f for f in report.findings if f.operation not in LABELS and f.operation != "run"]
    _fail(unknown)


def test_every_operation_answered_2xx(contract: Any) -> None:
    """Over the whole run (every test above, every phase), every operation answered 2xx, but
    those the spec puts out of reach (``test_success_out_of_reach`` names them)."""
    report = contract.engine_report()
    _fail([f for f in report.findings if f.operation == "run"])
    out_of_reach = {spec.label(op) for op, _ in _out_of_reach(contract.world)}
    never = set(contract.world.doc.labels()) - checks.succeeded(contract.target.base_url)
    assert not never - out_of_reach, "never answered 2xx: " + ", ".join(sorted(never))


def test_success_out_of_reach(contract: Any) -> None:
    """Operations whose success the spec puts out of reach of any client (a state no
    operation leads to) are reported as a skip that names them and says why."""
    found = _out_of_reach(contract.world)
    if found:
        pytest.skip("success cannot be produced here: " + "; ".join(why for _, why in found))


def _out_of_reach(world: Any) -> list[tuple[Any, str]]:
    return [(op, r.why) for op in OPERATIONS if (r := world.state_refusal(op)) is not None]
