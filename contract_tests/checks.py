"""Gantry's conventions as schemathesis checks, registered once and run on every case.

Importing this module registers them globally, so they run on every response schemathesis
validates: the engine's phases (examples, coverage, fuzzing, stateful) and every request the
auth matrix, the CSRF probes, the lifecycle chains and the pagination walks send. Each check
reads the convention from the response and the spec, never from a list of operations.

* ``problem_details``: every 4xx/5xx is ``application/problem+json`` whose ``status`` is the HTTP
  status, whose ``code`` is one the spec documents for that status on that operation, and whose
  ``request_id`` is the ``X-Request-Id`` header, or, on an operation that declares
  ``x-gantry-error-format``, that API's native envelope; 401 carries ``WWW-Authenticate``, 405
  ``Allow`` and 429 ``Retry-After``.
* ``pagination``: a first page of a list (the pagination convention) walked with a small
  ``limit`` returns every item exactly once, in the declared order, never more than ``limit``
  per page, ending with ``next_cursor: null``; a tampered cursor and a cursor of another list
  answer 400 ``invalid_cursor``.
* ``list_selection``: a list's items hold the values its path and scalar filters asked for
  (``workspace_id``, ``status``, ``role``...) and the ranges its ``x-gantry-filter`` parameters
  asked for (``from``, ``to``, ``updated_since``): no item of another workspace, no filter
  ignored.
* ``positive_data_on_lists``: see ``schemathesis.toml``.
* ``conditional_get``: a GET answered 200 with an ``ETag``, on an operation that documents 304,
  answers 304 (no body, the same tag) when the tag comes back in ``If-None-Match``.
* ``EveryOperationSucceedsOnce``: over the whole run (every part of the suite, every phase),
  every operation of the spec answered 2xx at least once.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import schemathesis

from contract_tests import spec
from contract_tests.sending import call_case, validate_case

PROBLEM_JSON = "application/problem+json"
MAX_WALKS_PER_LIST = 4  # per process and list operation, for walks started by generated cases
PAGE_BUDGET = 12  # a walk uses a limit that needs about this many pages
_PAGE_PARAMETERS = frozenset({"limit", "cursor", "order", "include_total"})
_walking: contextvars.ContextVar[bool] = contextvars.ContextVar("walking", default=False)
_lock = threading.Lock()
_walked: dict[str, set[tuple[Any, ...]]] = {}
_documents: dict[int, tuple[Any, spec.Document]] = {}


def _header(response: Any, name: str) -> str | None:
    values = response.headers.get(name.lower()) or []
    if isinstance(values, str):
        return values
    return values[0] if values else None


def document_of(case: Any) -> spec.Document:
    raw = case.operation.schema.raw_schema
    cached = _documents.get(id(raw))
    if cached is None or cached[0] is not raw:
        cached = _documents[id(raw)] = (raw, spec.Document(raw))
    return cached[1]


def _sent_method(response: Any) -> str:
    return str(response.request.method).upper()


# ── errors ────────────────────────────────────────────────────────────────────────────────────


@schemathesis.check
def problem_details(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx/5xx is a problem document that agrees with the response and the spec, or the
    native envelope the operation declares (``x-gantry-error-format``)."""
    status = response.status_code
    if status < 400:
        return None
    method = _sent_method(response)
    native = document_of(case).error_format_at(method, case.operation.path)
    if native is not None:
        _native_error(response, status, native)
    else:
        _problem(response, status, case, method)
    if status == 401:
        assert _header(response, "www-authenticate"), "401 without WWW-Authenticate"
    if status == 405:
        assert _header(response, "allow"), "405 without Allow"
    if status == 429:
        assert _header(response, "retry-after"), "429 without Retry-After"
    return None


def _native_error(response: Any, status: int, native: str) -> None:
    """An error in another API's envelope: ``openai`` (``{"error": {message, type, param,
    code}}``) or ``anthropic`` (``{"type": "error", "error": {type, message}, request_id}``),
    with the ``X-Request-Id`` every answer carries."""
    ctype = (_header(response, "content-type") or "").split(";")[0].strip()
    assert ctype == "application/json", (
        f"{status} in the {native} envelope answered with Content-Type {ctype!r}, not "
        "application/json"
    )
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{status} {native} error body is not JSON") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{status} is not in the {native} envelope (no `error` object)"
    assert isinstance(error.get("message"), str) and isinstance(error.get("type"), str), (
        f"{status} {native} error without a string `message` and `type`"
    )
    request_id = _header(response, "x-request-id")
    assert request_id, f"{status} {native} error without X-Request-Id"
    if native == "anthropic":
        assert body.get("type") == "error", f"{status} anthropic error whose type is not `error`"
        assert body.get("request_id") == request_id, (
            f"anthropic error request_id {body.get('request_id')!r} != X-Request-Id {request_id!r}"
        )


def _problem(response: Any, status: int, case: Any, method: str) -> None:
    ctype = (_header(response, "content-type") or "").split(";")[0].strip()
    assert ctype == PROBLEM_JSON, (
        f"{status} answered with Content-Type {ctype!r}, not {PROBLEM_JSON}"
    )
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{status} problem body is not JSON") from None
    assert isinstance(body, dict), f"{status} problem body is not an object"
    assert body.get("status") == status, f"problem status {body.get('status')!r} != HTTP {status}"
    documented = document_of(case).codes_for(f"{method} {case.operation.path}", status)
    assert body.get("code") in documented, (
        f"problem code {body.get('code')!r} is not documented for {status} on "
        f"{method} {case.operation.path} (documented: {', '.join(sorted(documented))})"
    )
    request_id = _header(response, "x-request-id")
    assert request_id and body.get("request_id") == request_id, (
        f"problem request_id {body.get('request_id')!r} != X-Request-Id {request_id!r}"
    )


@schemathesis.check
def positive_data_on_lists(ctx: Any, response: Any, case: Any) -> None:
    """On list operations a schema-valid request may only be refused (400) for its cursor.

    ``schemathesis.toml`` lets lists answer 400 to generated data because a fabricated cursor
    cannot be told from a real one by the schema; this check keeps every other 400 a failure.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    op = spec.by_label(case.operation.label)
    if op is None or not spec.is_list(op) or _sent_method(response) != op.method:
        return None
    body = json.loads(response.content)
    assert body.get("code") == "invalid_cursor" and case.query and case.query.get("cursor"), (
        f"schema-valid request to a list refused with 400 {body.get('code')!r}: {body.get('errors')}"
    )
    return None


@schemathesis.check
def list_selection(ctx: Any, response: Any, case: Any) -> None:
    """A list answers only what its path and filters select: every item whose field is named
    like a path parameter (``workspace_id``) or a scalar filter (``status``, ``role``) holds the
    value the request gave it."""
    if response.status_code != 200 or _sent_method(response) != "GET":
        return None
    op = spec.by_label(case.operation.label)
    if op is None or not spec.is_list(op):
        return None
    selected = {
        name: value
        for name, value in {**(case.query or {}), **(case.path_parameters or {})}.items()
        if name not in _PAGE_PARAMETERS and isinstance(value, (str, int))
    }
    ranges = _declared_ranges(case)
    items = json.loads(response.content).get("items") or []
    for item in items:
        if not isinstance(item, dict):
            continue
        wrong = {n: item[n] for n, v in selected.items() if n in item and str(item[n]) != str(v)}
        for name, (field, compare) in ranges.items():
            value = _instant((case.query or {}).get(name))
            held = _instant(item.get(field))
            if value is not None and held is not None and not _COMPARE[compare](held, value):
                wrong[f"{field} (asked {name}{compare}{case.query[name]})"] = item.get(field)
        assert not wrong, (
            f"{case.operation.label}: asked for {selected}, the answer holds {item_key(item)} "
            f"with {wrong}"
        )
    if ranges and len(items) > 1 and not _walking.get():
        _probe_ranges(case, response, items, ranges)
    return None


MAX_RANGE_PROBES = 2  # per process and list operation
_range_probed: dict[str, int] = {}


def _probe_ranges(
    case: Any, response: Any, items: list[Any], ranges: dict[str, tuple[str, str]]
) -> None:
    """Ask the list again with each declared range set at the middle item's value: generated
    instants rarely fall between the items a test has, so a filter left unread would pass."""
    with _lock:
        key = f"{_origin(response)} {case.operation.label}"
        if _range_probed.get(key, 0) >= MAX_RANGE_PROBES:
            return
        _range_probed[key] = _range_probed.get(key, 0) + 1
    middle = items[len(items) // 2]
    for name, (field, compare) in ranges.items():
        pivot = middle.get(field) if isinstance(middle, dict) else None
        if _instant(pivot) is None:
            continue
        query = {k: v for k, v in (case.query or {}).items() if k != "cursor"}
        narrowed = case.operation.Case(
            path_parameters=dict(case.path_parameters or {}),
            query={**query, name: pivot},
            headers=dict(case.headers or {}),
            cookies=dict(case.cookies or {}),
        )
        with walking():
            answer = call_case(narrowed, headers=_auth_of(response))
        assert answer.status_code == 200, (
            f"{case.operation.label}: {name}={pivot} answered {answer.status_code}"
        )
        for item in answer.json().get("items") or []:
            held = _instant(item.get(field)) if isinstance(item, dict) else None
            assert held is None or _COMPARE[compare](held, _instant(pivot)), (  # type: ignore[arg-type]
                f"{case.operation.label}: asked {name}={pivot} ({field} {compare}), the answer "
                f"holds {item_key(item)} with {field}={item.get(field)}"
            )


_COMPARE: dict[str, Callable[[datetime, datetime], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def _declared_ranges(case: Any) -> dict[str, tuple[str, str]]:
    """The query parameters of the case's operation that declare ``x-gantry-filter``: name ->
    (item field, comparison)."""
    doc = document_of(case)
    found: dict[str, tuple[str, str]] = {}
    for parameter in case.operation.definition.raw.get("parameters") or []:
        resolved = doc.resolve(parameter) or {}
        declared = resolved.get("x-gantry-filter")
        if resolved.get("in") == "query" and isinstance(declared, dict):
            compare = str(declared.get("compare", ">="))
            if compare in _COMPARE and declared.get("field"):
                found[str(resolved["name"])] = (str(declared["field"]), compare)
    return found


def _instant(value: Any) -> datetime | None:
    """An RFC 3339 instant, or None for anything else (the schema checks speak of those)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# ── pagination ────────────────────────────────────────────────────────────────────────────────


@schemathesis.check
def pagination(ctx: Any, response: Any, case: Any) -> None:
    """Walk a list from a first page a case received (a few distinct lists per operation)."""
    if _walking.get() or response.status_code != 200 or _sent_method(response) != "GET":
        return None
    op = spec.by_label(case.operation.label)
    if op is None or not spec.is_list(op) or (case.query or {}).get("cursor"):
        return None
    if case.meta is not None and not case.meta.generation.mode.is_positive:
        return None
    auth = _auth_of(response)
    key = (
        tuple(sorted((case.path_parameters or {}).items())),
        tuple(sorted((k, str(v)) for k, v in (case.query or {}).items() if k != "limit")),
        tuple(sorted(auth.items())),
    )
    with _lock:
        seen = _walked.setdefault(f"{_origin(response)} {case.operation.label}", set())
        if key in seen or len(seen) >= MAX_WALKS_PER_LIST:
            return None
        seen.add(key)
    walk_list(case, auth)
    return None


MAX_REVALIDATIONS = 4  # per process and operation
_revalidated: dict[str, int] = {}


@schemathesis.check
def conditional_get(ctx: Any, response: Any, case: Any) -> None:
    """A 200 to a GET that carries an ``ETag``, on an operation that documents 304: the same
    request with that tag in ``If-None-Match`` answers 304 with no body and the same tag, and
    with a tag that matches nothing answers 200 again."""
    if _walking.get() or response.status_code != 200 or _sent_method(response) != "GET":
        return None
    etag = _header(response, "ETag")
    responses = case.operation.definition.raw.get("responses", {})
    if not etag or "304" not in responses:
        return None
    with _lock:
        key = f"{_origin(response)} {case.operation.label}"
        if _revalidated.get(key, 0) >= MAX_REVALIDATIONS:
            return None
        _revalidated[key] = _revalidated.get(key, 0) + 1
    label = case.operation.label
    auth = _auth_of(response)
    with walking():
        same = call_case(case, headers={**auth, "If-None-Match": etag})
        other = call_case(case, headers={**auth, "If-None-Match": '"no-such-tag"'})
    assert same.status_code == 304, (
        f"{label}: If-None-Match with the ETag just served answered {same.status_code}, not 304"
    )
    assert not same.content, f"{label}: a 304 carried a body"
    assert _header(same, "ETag") == etag, f"{label}: the 304 named another ETag than the 200"
    assert other.status_code == 200, (
        f"{label}: If-None-Match with a tag that matches nothing answered "
        f"{other.status_code}, not 200"
    )
    return None


def _auth_of(response: Any) -> dict[str, str]:
    sent = response.request.headers
    keep = ("authorization", "cookie", "x-requested-with", "origin")
    return {k: v for k, v in sent.items() if k.lower() in keep}


def item_key(item: Any, field: str | None = None) -> Any:
    """An item's identity: the ``field`` that names it (``Document.item_identity``), else its
    ``id``, else its ``*_id`` fields (a member is workspace + user)."""
    if isinstance(item, dict):
        if field is not None and field in item:
            return item[field]
        if "id" in item:
            return item["id"]
        ids = tuple(sorted((k, v) for k, v in item.items() if k.endswith("_id")))
        if ids:
            return ids
    return json.dumps(item, sort_keys=True)


def _stamp(item: Any) -> datetime | None:
    value = item.get("created_at") if isinstance(item, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@contextmanager
def walking() -> Iterator[None]:
    token = _walking.set(True)
    try:
        yield
    finally:
        _walking.reset(token)


def walk_list(
    case: Any,
    auth: dict[str, str],
    *,
    limit: int | None = None,
    send: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Walk the list of ``case`` and assert the pagination convention; return what it saw.

    Pages fetched here go through every other check too (``validate``), so a broken follow-up
    page is reported as what it is (a 500, a wrong schema) rather than as a pagination bug.
    """
    send = send or (lambda c: call_case(c, headers=auth))
    op = spec.by_label(case.operation.label)
    assert op is not None
    label = case.operation.label
    identity = document_of(case).item_identity(op)

    def key_of(item: Any) -> Any:
        return item_key(item, identity)

    maximum = int((spec.query_param(op, "limit").schema or {}).get("maximum", 200))
    base_query = {k: v for k, v in (case.query or {}).items() if k not in ("limit", "cursor")}
    order_param = spec.query_param(op, "order")
    default_order = str((order_param.schema or {}).get("default", "desc")) if order_param else None
    order = str(base_query.get("order", default_order)) if default_order else None

    def fetch(
        page_limit: int, cursor: str | None = None, query: dict[str, Any] | None = None
    ) -> Any:
        params = {**(base_query if query is None else query), "limit": page_limit}
        if cursor is not None:
            params["cursor"] = cursor
        derived = case.derive(query=params)
        with walking():
            response = send(derived)
            validate_case(derived, response)
        return response

    def collect(page_limit: int) -> tuple[list[list[Any]], list[str]]:
        pages: list[list[Any]] = []
        cursors: list[str] = []
        cursor: str | None = None
        while True:
            response = fetch(page_limit, cursor)
            assert response.status_code == 200, (
                f"{label}: page {len(pages) + 1} (limit={page_limit}, cursor={cursor!r}) "
                f"answered {response.status_code}"
            )
            body = response.json()
            items, cursor = body["items"], body["next_cursor"]
            assert len(items) <= page_limit, (
                f"{label}: page {len(pages) + 1} has {len(items)} items but limit={page_limit}"
            )
            assert items or not pages, (
                f"{label}: the next_cursor of page {len(pages)} (limit={page_limit}) led to an "
                f"empty page"
            )
            pages.append(items)
            if cursor is None:
                return pages, cursors
            assert cursor not in cursors, f"{label}: next_cursor {cursor!r} repeats; the walk loops"
            cursors.append(cursor)
            assert len(pages) <= 10_000 // max(page_limit, 1), f"{label}: the walk does not end"

    reference_pages, _ = collect(maximum)
    reference = [item for page in reference_pages for item in page]
    small = limit or max(1, min(5, math.ceil(len(reference) / PAGE_BUDGET))) if reference else 2
    small = min(small, maximum)
    pages, cursors = collect(small)
    walked = [item for page in pages for item in page]
    keys = [key_of(i) for i in walked]
    duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
    assert not duplicates, (
        f"{label}: walking with limit={small} returned items on two pages: {', '.join(duplicates)}"
    )
    for number, page in enumerate(pages[:-1], 1):
        assert len(page) == small, (
            f"{label}: page {number} of the walk has {len(page)} items (limit={small}) but a "
            f"next_cursor"
        )
    found_stamps = [_stamp(i) for i in walked]
    stamps = [s for s in found_stamps if s is not None]
    if order in ("asc", "desc") and len(stamps) == len(found_stamps):
        pairs = list(itertools.pairwise(stamps))
        bad = [n for n, (a, b) in enumerate(pairs) if (a > b if order == "asc" else a < b)]
        assert not bad, f"{label}: items are not in {order} order of created_at (at {bad[0] + 1})"
    # The edges: a last page exactly full (no next_cursor), and one item over.
    edges = {n: collect(n)[0] for n in {len(reference), len(reference) - 1} if 1 <= n <= maximum}
    again_pages, _ = collect(maximum)
    again = [item for page in again_pages for item in page]
    if [key_of(i) for i in again] == [key_of(i) for i in reference]:  # nothing changed
        assert keys == [key_of(i) for i in reference], (
            f"{label}: walking with limit={small} returned {len(walked)} items, the list has "
            f"{len(reference)}: missing {sorted({str(k) for k in map(key_of, reference)} - {str(k) for k in keys})[:5]}"
        )
        for edge, edge_pages in edges.items():
            got = [key_of(i) for page in edge_pages for i in page]
            assert got == [key_of(i) for i in reference] and len(edge_pages) == -(
                -len(reference) // edge
            ), (
                f"{label}: walking {len(reference)} items with limit={edge} gave "
                f"{len(edge_pages)} pages of {[len(p) for p in edge_pages]} items"
            )
        if str(base_query.get("include_total", "")).lower() == "true":
            total = fetch(small).json().get("total")
            assert total == len(reference), f"{label}: total={total}, the list has {len(reference)}"
    if cursors:
        _expect_code(fetch(small, _tamper(cursors[0])), label, "a tampered cursor")
        if order in ("asc", "desc"):
            other = {**base_query, "order": "asc" if order == "desc" else "desc"}
            response = fetch(small, cursors[0], other)
            _expect_code(response, label, "a cursor of another list (the other order)")
    return {"items": len(walked), "pages": len(pages), "limit": small}


def _tamper(cursor: str) -> str:
    middle = len(cursor) // 2
    swap = "A" if cursor[middle] != "A" else "B"
    return cursor[:middle] + swap + cursor[middle + 1 :]


def _expect_code(response: Any, label: str, what: str) -> None:
    assert response.status_code == 400, f"{label}: {what} answered {response.status_code}, not 400"
    code = response.json().get("code")
    assert code == "invalid_cursor", f"{label}: {what} answered 400 {code!r}, not invalid_cursor"


# ── every operation succeeds once ─────────────────────────────────────────────────────────────

# Operations that answered 2xx, by server origin, over everything this process sent: the engine's
# phases and the suite's own requests alike, so the verdict covers the whole run.
_succeeded: dict[str, set[str]] = {}


def _origin(response: Any) -> str:
    parts = urlsplit(str(response.request.url))
    return f"{parts.scheme}://{parts.netloc}"


# Operations whose success the spec itself puts out of reach (``World.state_refusal``: a state
# no operation leads to), with why; the run's verdict leaves them out, and the suite reports
# them as a skip that says why.
_out_of_reach: dict[str, str] = {}


def out_of_reach(label: str, why: str) -> None:
    """Leave ``label`` out of the run's verdict: its success cannot be produced, for ``why``."""
    with _lock:
        _out_of_reach[label] = why


def succeeded(origin: str) -> set[str]:
    """Labels of the operations that answered 2xx on the server at ``origin`` so far."""
    with _lock:
        return set(_succeeded.get(origin, set()))


@schemathesis.check
class EveryOperationSucceedsOnce:
    """Fail the run if an operation of the spec never answered 2xx: auth or fixtures broken, a
    handler that always fails, a link nobody can follow. Configurable in ``schemathesis.toml``
    (``[checks.EveryOperationSucceedsOnce] ignore = ["METHOD /path"]``); nothing is ignored
    there. The suite leaves out what the spec puts out of reach (``out_of_reach``)."""

    def __init__(self, ignore: list[str] | None = None) -> None:
        self.ignore = set(ignore or [])
        self.labels: set[str] = set()
        self.origins: set[str] = set()

    def after_response(self, ctx: Any, response: Any, case: Any) -> None:
        origin = _origin(response)
        with _lock:
            if not self.labels:
                self.labels = set(document_of(case).labels())
            self.origins.add(origin)
            if _sent_method(response) == case.operation.method.upper() and (
                200 <= response.status_code < 300
            ):
                _succeeded.setdefault(origin, set()).add(case.operation.label)
        return None

    def after_run(self, ctx: Any) -> None:
        for origin in sorted(self.origins):
            never = self.labels - succeeded(origin) - self.ignore - set(_out_of_reach)
            assert not never, f"never answered 2xx on {origin}: " + ", ".join(sorted(never))
