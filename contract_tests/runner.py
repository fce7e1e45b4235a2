"""Running schemathesis for the suite: schemas bound to a target, single requests, and engine runs.

Everything the suite sends goes through schemathesis ``Case`` objects and ``validate_case``, so
every registered check (the built-ins and ``contract_tests.checks``) judges every response.
Failures come back as ``Finding``s: which check, on which operation, and why.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis.core.failures import CustomFailure, Failure, FailureGroup
from schemathesis.engine import Status, events, from_schema

from contract_tests import (
    checks,  # registers the checks
    spec,
)
from contract_tests.clock import at_callers_time
from contract_tests.sending import call_case, make_case, validate_case
from contract_tests.target import Target
from contract_tests.world import SESSION_COOKIE, World

ROOT = Path(__file__).resolve().parents[1]
_CUSTOM = re.compile(r"`([^`]+)`")
# Requests the suite's own parts (matrix, CSRF, lifecycle, pagination) sent, by origin and label.
SENT: Counter[tuple[str, str]] = Counter()


@dataclass(frozen=True, order=True)
class Finding:
    """One contract violation: the check that saw it, the operation, what it saw."""

    check: str
    operation: str  # "METHOD /path", as in the spec
    message: str = field(compare=False)

    def __str__(self) -> str:
        return f"[{self.check}] {self.operation}: {self.message}"


class OutOfReach(Exception):
    """A probe cannot be made here: the spec puts what it needs out of reach (a state no
    operation leads to). The message says why; the suite reports it as a skip, never a pass."""


class ContractViolation(AssertionError):
    """Raised by the suite's own tests; carries findings in the same shape as schemathesis's."""

    def __init__(self, findings: Iterable[Finding]) -> None:
        self.findings = sorted(set(findings))
        super().__init__("\n".join(str(f) for f in self.findings))


def check_name(failure: Failure) -> str:
    """The name of the check that raised ``failure``."""
    if isinstance(failure, CustomFailure):
        found = _CUSTOM.search(failure.title)
        return found.group(1) if found else "custom"
    names = getattr(type(failure), "checks", ()) or ()
    return names[0] if names else type(failure).__name__


def findings_from(exc: BaseException, default_operation: str) -> list[Finding]:
    """Findings from whatever a validation raised (a FailureGroup, a Failure, an assertion)."""
    if isinstance(exc, ContractViolation):
        return list(exc.findings)
    if isinstance(exc, FailureGroup):
        result: list[Finding] = []
        for inner in exc.exceptions:
            result.extend(findings_from(inner, default_operation))
        return result
    if isinstance(exc, Failure):
        message = f"{exc.title}: {exc.message}".strip().split("\n\n[")[0][:1500]
        return [Finding(check_name(exc), exc.operation or default_operation, message)]
    return [Finding("assertion", default_operation, str(exc)[:1500])]


# ── schemas ───────────────────────────────────────────────────────────────────────────────────


def config() -> Any:
    """The repository's ``schemathesis.toml`` (what an operator's ``schemathesis run`` reads)."""
    cfg = schemathesis.Config.from_path(str(ROOT / "schemathesis.toml"))
    # The spec is the source of truth; do not mine the app's source for constants.
    cfg.projects.default.analysis.constants.enabled = False
    return cfg


def load_schema(target: Target, document: Mapping[str, Any], cfg: Any = None) -> Any:
    """A schemathesis schema of ``document`` that sends its requests to ``target``."""
    schema = schemathesis.openapi.from_dict(dict(document), config=cfg or config())
    schema.config.update(base_url=target.api_url)
    schema.config.output.sanitization.update(enabled=False)
    return schema


# ── single requests ───────────────────────────────────────────────────────────────────────────


def send_and_check(schema: Any, request: Any, *, csrf: bool = True) -> tuple[Any, list[Finding]]:
    """Send a ``world.Request``; return the response and what the checks found."""
    case = make_case(schema, request, csrf=csrf)
    with at_callers_time(request.caller):
        response = call_case(case)
    SENT[(str(schema.config.base_url or ""), spec.label(request.op))] += 1
    try:
        validate_case(case, response, light=False)
    except (FailureGroup, AssertionError) as exc:
        # A FailureGroup holds a set: sort, so the same bug is always reported the same way.
        return response, sorted(findings_from(exc, spec.label(request.op)))
    return response, []


# ── engine runs ───────────────────────────────────────────────────────────────────────────────


@dataclass
class EngineReport:
    """What one engine run did: cases per operation and phase, 2xx seen, findings."""

    cases: Counter[str] = field(default_factory=Counter)
    negative: Counter[str] = field(default_factory=Counter)
    by_phase: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    ok: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def table(self, labels: Iterable[str], own: Mapping[str, int] | None = None) -> str:
        """Cases per operation: the engine's (all, negative, by phase) and the suite's own."""
        own = own or {}
        phases = [p for p in ("examples", "coverage", "fuzzing", "stateful") if p in self.by_phase]
        head = (
            f"{'operation':52} {'engine':>6} {'neg':>5} "
            + " ".join(f"{p[:8]:>8}" for p in phases)
            + f" {'suite':>6}"
        )
        lines = [head, "-" * len(head)]
        for name in sorted(labels):
            row = " ".join(f"{self.by_phase[p][name]:>8}" for p in phases)
            lines.append(
                f"{name:52} {self.cases[name]:>6} {self.negative[name]:>5} {row} "
                f"{own.get(name, 0):>6}"
            )
        lines.append(
            f"{'total':52} {sum(self.cases.values()):>6} {sum(self.negative.values()):>5} "
            + " ".join(f"{sum(self.by_phase[p].values()):>8}" for p in phases)
            + f" {sum(own.get(name, 0) for name in labels):>6}"
        )
        lines.append(
            "engine: schemathesis's phases; neg: cases with invalid data; suite: requests of the "
            "auth matrix, CSRF probes, lifecycle chains and pagination walks"
        )
        return "\n".join(lines)


class EngineAuth:
    """Credentials for the engine: the superadmin's bearer token for every operation, and a
    cookie session (with the CSRF headers) for those whose least role is ``session``.

    The session belongs to a world account; when a request ends it (sign-out, password change,
    a block), the next 401 makes schemathesis fetch again, and ``get`` signs in anew after the
    superadmin has reset the account.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.account = world.new_account("engine", with_pat=False)

    def get(self, case: Any, context: Any) -> dict[str, str]:
        world, account = self.world, self.account
        reset = world.send(
            "PATCH",
            f"/admin/users/{account.id}",
            bearer=world.target.token,
            json={"password": world.password, "status": "active"},
        )
        if reset.status_code == 404:  # the run deleted it: make another
            self.account = account = world.new_account("engine", with_pat=False)
        else:
            account.session = world.login(account.email, world.password)
        return {"bearer": world.target.token, "session": account.session}

    def set(self, case: Any, data: dict[str, str], context: Any) -> None:
        op = spec.by_label(case.operation.label)
        if op is not None and op.min_role == "session":
            case.cookies = {**(case.cookies or {}), SESSION_COOKIE: data["session"]}
            case.headers = {**(case.headers or {}), **self.world.csrf_headers()}
        else:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data['bearer']}"}


def _only(raw: Mapping[str, Any], operation_id: str) -> dict[str, Any]:
    """``raw`` with only the path of one operation left (the schema's own filters leave this
    version's operation list whole). The path keeps its other methods, which the ``Allow``
    header check needs."""
    paths = {
        path: item
        for path, item in raw.get("paths", {}).items()
        if any(
            isinstance(definition, Mapping) and definition.get("operationId") == operation_id
            for definition in item.values()
        )
    }
    return {**raw, "paths": paths}


def run_engine(
    target: Target,
    world: World,
    *,
    phases: list[str],
    max_examples: int,
    seed: int | None = None,
    workers: int = 1,
    max_steps: int | None = None,
    only: str | None = None,
) -> EngineReport:
    """One schemathesis engine run of ``phases`` over every operation (or the operationId
    ``only``), as ``world``'s callers."""
    import time

    cfg = config()
    cfg.update(seed=seed, max_failures=None)
    schema = load_schema(target, _only(world.doc.raw, only) if only else world.doc.raw, cfg)
    schema.config.phases.update(phases=phases)
    schema.config.generation.update(max_examples=max_examples, database="none")
    schema.config.update(workers=workers)
    if max_steps is not None:
        schema.config.phases.stateful.max_steps = max_steps
    auth = EngineAuth(world)
    protected = {world.accounts["superadmin"].id}
    for op in spec.operations():
        refusal = world.state_refusal(op)
        if refusal is not None:
            checks.out_of_reach(spec.label(op), refusal.why)

    class _Auth:  # schemathesis instantiates the provider class itself
        def get(self, case: Any, context: Any) -> Any:
            return auth.get(case, context)

        def set(self, case: Any, data: Any, context: Any) -> None:
            auth.set(case, data, context)

    schema.auth(refresh_interval=3600)(_Auth)

    @schema.hook("filter_case")  # type: ignore[untyped-decorator]
    def _not_the_suites_own_identity(context: Any, case: Any) -> bool:
        # The run may block, demote or delete any user it finds, except the superadmin it runs as.
        return not any(str(v) in protected for v in (case.path_parameters or {}).values())

    @schema.hook("map_body")  # type: ignore[untyped-decorator]
    def _unique_names(context: Any, body: Any) -> Any:
        # Hypothesis replays choice sequences while it explores; against a server that keeps
        # state, a replayed create would now answer 409 and the chain would diverge (Hypothesis
        # reports that as flaky data generation). Keep unique values unique on every call.
        return world.realize(context.operation.label, body)

    report = EngineReport()
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(report, event)
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.value!r}")
            report.findings.append(Finding("error", event.label or "?", repr(event.value)))
        elif isinstance(event, events.FatalError):
            report.errors.append(repr(event.exception))
            report.findings.append(Finding("error", "run", repr(event.exception)))
        elif isinstance(event, events.EngineFinished):
            for failure in event.failures:
                report.findings.append(
                    Finding(check_name(failure), "run", f"{failure.title}: {failure.message}")
                )
    report.seconds = time.monotonic() - started
    report.findings = sorted(set(report.findings))
    return report


def _record(report: EngineReport, event: Any) -> None:
    recorder = event.recorder
    phase = event.phase.value if hasattr(event.phase, "value") else str(event.phase)
    for case_id, node in recorder.cases.items():
        interaction = recorder.interactions.get(case_id)
        if interaction is None or interaction.response is None:
            continue
        case = node.value
        name = case.operation.label
        report.cases[name] += 1
        report.by_phase[phase][name] += 1
        meta = case.meta
        if meta is not None and meta.generation.mode.is_negative:
            report.negative[name] += 1
        if 200 <= interaction.response.status_code < 300:
            report.ok.add(name)
    for case_id, nodes in recorder.checks.items():
        node = recorder.cases.get(case_id)
        name = node.value.operation.label if node is not None else event.label or "?"
        for check in nodes:
            if check.status == Status.FAILURE and check.failure_info is not None:
                failure = check.failure_info.failure
                message = f"{failure.title}: {failure.message}".split("\n\n[")[0][:1500]
                report.findings.append(Finding(check.name, failure.operation or name, message))


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default
