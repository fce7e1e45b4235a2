"""Planted faults: the bugs the contract suite claims to catch, built into the app one at a time.

They live here, in test code, and nowhere else. Each fault changes the app from the outside
through what ``create_app`` accepts anyway (a wrapper around the guard, a wrapper around the
handler resolver) or through a WSGI middleware around the finished app. Production code has no
fault switch: ``contract_tests.selftest`` builds ``create_app(config, guard=..., handlers=...)``
itself.

A fault names the operation it lives in by ``operationId`` (as any bug lives somewhere); the
suite is not told, and must find it on its own with its ordinary checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from flask import Response
from sqlalchemy import delete, select

from server.domain import agents, runs
from server.domain import errors as rule
from server.domain.values import plain
from server.handlers import sdk as sdk_handlers
from server.runtime.dispatch import GantryGuard, resolve_handler
from server.runtime.errors import Conflict, Forbidden, NotFound
from server.runtime.pagination import Key, PageRequest
from server.runtime.present import Overlay
from server.storage import repositories as repo
from server.storage.models import ApiKey, AuditEvent, Membership, PersonalAccessToken

Wrapper = Callable[..., Any]
_WORKSPACE = "/api/v1/workspaces/[^/]+"  # a workspace's path, as a regular expression
# A handler's refusals: the runtime's errors, or the domain's, which the runtime maps to them.
NOT_FOUND = (NotFound, rule.NotFound)
CONFLICT = (Conflict, rule.Conflict)


@dataclass(frozen=True)
class Fault:
    name: str
    what: str  # the bug, in words
    operation_id: str
    guard: Callable[[Any], Any] | None = None  # AppState -> Guard (create_app's ``guard``)
    handlers: Callable[[Any], Any] | None = None  # Operation -> handler (create_app's ``handlers``)
    middleware: Callable[[Any], Any] | None = None  # WSGI app -> WSGI app


# ── building blocks ───────────────────────────────────────────────────────────────────────────


class _GuardWrapper:
    """The server's own guard, with one operation's authenticate/authorize replaced."""

    def __init__(
        self,
        state: Any,
        operation_id: str,
        *,
        authenticate: Wrapper | None = None,
        authorize: Wrapper | None = None,
    ) -> None:
        self.inner = GantryGuard(state)
        self.operation_id = operation_id
        self._authenticate = authenticate
        self._authorize = authorize

    def authenticate(self, operation: Any, http: Any, session: Any) -> Any:
        if self._authenticate is not None and operation.operation_id == self.operation_id:
            return self._authenticate(self.inner, operation, http, session)
        return self.inner.authenticate(operation, http, session)

    def authorize(self, operation: Any, principal: Any, path: Any, session: Any) -> Any:
        if self._authorize is not None and operation.operation_id == self.operation_id:
            return self._authorize(self.inner, operation, principal, path, session)
        return self.inner.authorize(operation, principal, path, session)


def _guard(operation_id: str, **replaced: Wrapper) -> Callable[[Any], Any]:
    return lambda state: _GuardWrapper(state, operation_id, **replaced)


def _handler(operation_id: str, wrap: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A handler resolver that wraps one operation's handler with ``wrap``."""

    def resolve(operation: Any) -> Any:
        handler = resolve_handler(operation)
        return wrap(handler) if operation.operation_id == operation_id else handler

    return resolve


def _middleware(
    method: str,
    path: str,
    edit: Callable[[int, list[tuple[str, str]], bytes], tuple[list[tuple[str, str]], bytes]],
) -> Callable[[Any], Any]:
    """A WSGI middleware that rewrites the responses of requests whose path matches the
    regular expression ``path`` (whole)."""
    pattern = re.compile(path)

    def install(app: Any) -> Any:
        def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if environ.get("REQUEST_METHOD") != method or not pattern.fullmatch(
                environ.get("PATH_INFO", "")
            ):
                return app(environ, start_response)  # type: ignore[no-any-return]
            captured: dict[str, Any] = {}

            def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                captured["status"], captured["headers"] = status, headers
                return lambda data: None

            body = b"".join(app(environ, start))
            code = int(captured["status"].split()[0])
            headers, body = edit(code, list(captured["headers"]), body)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
            start_response(captured["status"], headers)
            return [body]

        return wrapped

    return install


# ── the faults ────────────────────────────────────────────────────────────────────────────────


def _skip_auth() -> Fault:
    return Fault(
        "skips_auth",
        "an operation that skips authentication and authorisation",
        "listAuditLog",
        guard=_guard(
            "listAuditLog",
            authenticate=lambda inner, op, http, session: None,
            authorize=lambda inner, op, principal, path, session: None,
        ),
    )


def _wrong_type() -> Fault:
    def edit(
        code: int, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[list[tuple[str, str]], bytes]:
        if code == 200:
            workspace = json.loads(body)
            settings = workspace["settings"]
            settings["max_members"] = str(settings["max_members"])
            body = json.dumps(workspace).encode()
        return headers, body

    return Fault(
        "wrong_type_field",
        "a workspace answered with settings.max_members as a string",
        "getWorkspace",
        middleware=_middleware("GET", _WORKSPACE, edit),
    )


def _undocumented_status() -> Fault:
    def answer_202(app: Any) -> Any:
        pattern = re.compile(_WORKSPACE)

        def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                if status.startswith("200 "):
                    status = "202 Accepted"
                return start_response(status, headers, exc_info)

            if environ.get("REQUEST_METHOD") == "PATCH" and pattern.fullmatch(
                environ.get("PATH_INFO", "")
            ):
                return app(environ, start)  # type: ignore[no-any-return]
            return app(environ, start_response)  # type: ignore[no-any-return]

        return wrapped

    return Fault(
        "undocumented_status",
        "an update answering 202, which the spec does not document",
        "updateWorkspace",
        middleware=answer_202,
    )


def _cursor_key(key: Callable[[Any], Key] | None) -> Callable[[Any], Key]:
    """The key a page's cursor is made of: the handler's, else the list convention's."""
    return key or (lambda row: (row.created_at, row.id))


class _RepeatingPage(PageRequest):
    """Issues the next cursor one item early, so the next page repeats the last item."""

    def respond(
        self, rows: Any, serialize: Any = None, key: Any = None, total: int | None = None
    ) -> Any:
        body = super().respond(rows, serialize, key, total)
        page = rows[: self.limit]
        if body["next_cursor"] is not None and len(page) >= 2:
            body["next_cursor"] = self.codec.encode(self.scope, _cursor_key(key)(page[-2]))
        return body


def _page_fault(
    name: str, what: str, operation_id: str, change: Callable[[PageRequest], PageRequest]
) -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            req.page = change(req.page)
            return handler(req)

        return faulty

    return Fault(name, what, operation_id, handlers=_handler(operation_id, wrap))


def _copy_page(
    page: PageRequest, cls: type[PageRequest] = PageRequest, **changes: Any
) -> PageRequest:
    values = {f.name: getattr(page, f.name) for f in fields(page)}
    values.update(changes)
    return cls(**values)


def _list_repeats() -> Fault:
    return _page_fault(
        "list_repeats_item",
        "a list whose next page repeats the last item",
        "listMembers",
        lambda page: _copy_page(page, _RepeatingPage),
    )


def _list_ignores_limit() -> Fault:
    return _page_fault(
        "list_ignores_limit",
        "a list that always serves 50 items per page",
        "listApiKeys",
        lambda page: _copy_page(page, limit=50),
    )


def _boundary_500() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            if len(str(plain(getattr(req.body, "name", "")))) == 100:  # the spec's maxLength
                raise RuntimeError("name buffer overflow")
            return handler(req)

        return faulty

    return Fault(
        "boundary_500",
        "a create that fails with 500 on a name of exactly maxLength",
        "createWorkspace",
        handlers=_handler("createWorkspace", wrap),
    )


def _leaks_403() -> Fault:
    def authorize(inner: Any, op: Any, principal: Any, path: Any, session: Any) -> Any:
        try:
            return inner.authorize(op, principal, path, session)
        except NOT_FOUND:
            raise Forbidden(
                "You are not a member of this workspace.", code="insufficient_role"
            ) from None

    return Fault(
        "leaks_403",
        "a non-member told 403 (the workspace exists) instead of 404",
        "getWorkspace",
        guard=_guard("getWorkspace", authorize=authorize),
    )


def _gateway_role_skipped() -> Fault:
    def authorize(inner: Any, op: Any, principal: Any, path: Any, session: Any) -> Any:
        try:
            return inner.authorize(op, principal, path, session)
        except Forbidden as exc:
            if exc.code != "insufficient_role":
                raise
            return "admin"  # the role check of the flat path skipped: any member gets in

    return Fault(
        "gateway_role_skipped",
        "a provider updated by a viewer (the role check skipped on a flat gateway item path)",
        "updateProvider",
        guard=_guard("updateProvider", authorize=authorize),
    )


def _no_www_authenticate() -> Fault:
    def edit(
        code: int, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[list[tuple[str, str]], bytes]:
        if code == 401:
            headers = [(k, v) for k, v in headers if k.lower() != "www-authenticate"]
        return headers, body

    return Fault(
        "no_www_authenticate",
        "a 401 without WWW-Authenticate",
        "getMe",
        middleware=_middleware("GET", "/api/v1/auth/me", edit),
    )


def _not_problem_json() -> Fault:
    def edit(
        code: int, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[list[tuple[str, str]], bytes]:
        if code == 404:
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("Content-Type", "application/json"))
            body = json.dumps({"error": "not found"}).encode()
        return headers, body

    return Fault(
        "not_problem_json",
        "a 404 answered with a plain JSON body, not a problem",
        "revokeApiKey",
        middleware=_middleware("DELETE", f"{_WORKSPACE}/api-keys/[^/]+", edit),
    )


def _no_csrf() -> Fault:
    def authenticate(inner: Any, op: Any, http: Any, session: Any) -> Any:
        environ = http.environ
        saved = {k: environ.get(k) for k in ("HTTP_X_REQUESTED_WITH", "HTTP_ORIGIN")}
        environ["HTTP_X_REQUESTED_WITH"] = "XMLHttpRequest"  # as if nobody looked at them
        environ["HTTP_ORIGIN"] = http.host_url.rstrip("/")
        try:
            return inner.authenticate(op, http, session)
        finally:
            for key, value in saved.items():
                if value is None:
                    environ.pop(key, None)
                else:
                    environ[key] = value

    return Fault(
        "no_csrf_check",
        "a cookie write accepted without the CSRF header",
        "createApiKey",
        guard=_guard("createApiKey", authenticate=authenticate),
    )


# ── faults only a scenario sees (the declared rules, the clock, the edges of a list) ────────


class _FullLastPage(PageRequest):
    """Offers a next cursor whenever the page is full, even when nothing follows."""

    def respond(
        self, rows: Any, serialize: Any = None, key: Any = None, total: int | None = None
    ) -> Any:
        body = super().respond(rows, serialize, key, total)
        page = rows[: self.limit]
        if body["next_cursor"] is None and page and len(page) == self.limit:
            body["next_cursor"] = self.codec.encode(self.scope, _cursor_key(key)(page[-1]))
        return body


def _full_last_page_cursor() -> Fault:
    return _page_fault(
        "full_last_page_cursor",
        "a list whose exactly full last page still offers a next_cursor (to an empty page)",
        "listTokens",
        lambda page: _copy_page(page, _FullLastPage),
    )


def _patch_resets_nested() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            sent = req.body.model_fields_set
            given: frozenset[str] = getattr(req.body.settings, "model_fields_set", frozenset())
            ws = repo.get_workspace(req.db, str(req.path["workspace_id"]))
            if ws is not None and "settings" in sent and "max_members" not in given:
                # treated as a replacement
                settings = {**ws.settings, "max_members": 100}  # the spec's default
                repo.update_workspace(req.db, ws, settings=settings)
            return handler(req)  # merges the settings sent into the ones just reset

        return faulty

    return Fault(
        "patch_resets_nested_field",
        "a PATCH of settings.default_env that resets settings.max_members to its default",
        "updateWorkspace",
        handlers=_handler("updateWorkspace", wrap),
    )


def _expired_pat_accepted() -> Fault:
    def authenticate(inner: Any, op: Any, http: Any, session: Any) -> Any:
        clock = inner.state.clock
        if (http.environ.get("HTTP_AUTHORIZATION") or "").startswith("Bearer pat_"):
            inner.state.clock = lambda: datetime(2000, 1, 1, tzinfo=UTC)  # expiry never checked
        try:
            return inner.authenticate(op, http, session)
        finally:
            inner.state.clock = clock

    return Fault(
        "expired_pat_accepted",
        "an expired personal access token still accepted",
        "listWorkspaces",
        guard=_guard("listWorkspaces", authenticate=authenticate),
    )


def _admin_grants_owner() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            if req.role == "admin":  # the owner check compares against the wrong role
                req.role = "owner"
            return handler(req)

        return faulty

    return Fault(
        "admin_grants_owner",
        "an admin allowed to grant the owner role",
        "updateMember",
        handlers=_handler("updateMember", wrap),
    )


def _member_of_any_workspace() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            user_id = str(req.path["user_id"])
            found = req.db.scalars(select(Membership).where(Membership.user_id == user_id)).all()
            if found and all(m.workspace_id != req.path["workspace_id"] for m in found):
                req.path["workspace_id"] = found[0].workspace_id  # looked up by user alone
            return handler(req)

        return faulty

    return Fault(
        "member_of_any_workspace",
        "a member of workspace B changed through workspace A's path",
        "updateMember",
        handlers=_handler("updateMember", wrap),
    )


def _last_owner_removed() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            try:
                return handler(req)
            except CONFLICT as exc:
                if exc.code != "last_owner":
                    raise
                return None  # 204, as if removed

        return faulty

    return Fault(
        "last_owner_removal_204",
        "removing the last owner answered 204 instead of 409 last_owner",
        "removeMember",
        handlers=_handler("removeMember", wrap),
    )


def _revoked_key_revoked_again() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            try:
                return handler(req)
            except NOT_FOUND:
                found = req.db.get(ApiKey, str(req.path["key_id"]))
                if found is not None and found.workspace_id == req.path["workspace_id"]:
                    return None  # the status is not checked: a revoked key "revokes" again
                raise

        return faulty

    return Fault(
        "revoked_key_revoked_again",
        "revoking an already revoked API key answered 204 (an illegal transition)",
        "revokeApiKey",
        handlers=_handler("revokeApiKey", wrap),
    )


def _foreign_token_renamed() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            row = req.db.get(PersonalAccessToken, str(req.path["token_id"]))
            if row is None or row.user_id == req.user_id or row.status != "active":
                return handler(req)
            # Found by id alone: another user's token is renamed.
            repo.update_pat(req.db, row, name=str(plain(req.body.name)))
            return row

        return faulty

    return Fault(
        "foreign_token_renamed",
        "another user's personal access token renamed by id",
        "updateToken",
        handlers=_handler("updateToken", wrap),
    )


def _role_change_unaudited() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            result = handler(req)
            req.db.execute(  # as if the handler never recorded the change
                delete(AuditEvent).where(
                    AuditEvent.action == "member.role_changed",
                    AuditEvent.target_id == str(req.path["user_id"]),
                )
            )
            return result

        return faulty

    return Fault(
        "role_change_unaudited",
        "a role change that records no audit event",
        "updateMember",
        handlers=_handler("updateMember", wrap),
    )


def _ended_run_cancelled_again() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            try:
                return handler(req)
            except CONFLICT:  # the state is not checked: an ended run "cancels" again
                return runs.get_run(req.work, req.path["workspace_id"], req.path["run_id"])

        return faulty

    return Fault(
        "ended_run_cancelled_again",
        "cancelling a run that has already ended answered 200 (an illegal transition)",
        "cancelRun",
        handlers=_handler("cancelRun", wrap),
    )


def _line_replaced(
    name: str, what: str, operation_id: str, module: Any, attribute: str, stand_in: Any
) -> Fault:
    """A fault that is one function of the server replaced (as a line deleted or negated would
    replace it) while ``operation_id``'s handler runs."""

    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            with mock.patch.object(module, attribute, stand_in):
                return handler(req)

        return faulty

    return Fault(name, what, operation_id, handlers=_handler(operation_id, wrap))


def _agent_deleted_while_running() -> Fault:
    return _line_replaced(  # the check that refuses while runs are active, gone
        "agent_deleted_while_running",
        "an agent with a queued run deleted (204) instead of 409 has_active_runs",
        "deleteAgent",
        agents,
        "refuse_while_active",
        lambda *args: None,
    )


def _etag_ignored() -> Fault:
    return _line_replaced(  # the revalidation never matches: every fetch sends it all again
        "etag_ignored",
        "an SDK fetch that answers 200 with the content to the If-None-Match of its own ETag",
        "fetchSdkPrompt",
        sdk_handlers,
        "_matches",
        lambda *args: False,
    )


def _update_not_kept() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            savepoint = req.db.begin_nested()
            row = handler(req)
            savepoint.rollback()  # nothing of the change is written...
            sent = req.body.model_dump(mode="json", exclude_unset=True)
            echoed = {k: v for k, v in sent.items() if not isinstance(v, (dict, list))}
            return Overlay(row, **echoed)  # ...but the answer echoes what was sent

        return faulty

    return Fault(
        "update_not_kept",
        "a provider update that answers the values sent but never writes them",
        "updateProvider",
        handlers=_handler("updateProvider", wrap),
    )


def _idempotency_key_ignored() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            # The header is never read: a retried request queues a second run.
            req.headers = {k: v for k, v in req.headers.items() if k != "Idempotency-Key"}
            return handler(req)

        return faulty

    return Fault(
        "idempotency_key_ignored",
        "a workflow run request that ignores its Idempotency-Key (a retry runs twice)",
        "createWorkflowRun",
        handlers=_handler("createWorkflowRun", wrap),
    )


def _audit_from_ignored() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            req.query = {k: v for k, v in req.query.items() if k != "from"}  # never read
            return handler(req)

        return faulty

    return Fault(
        "audit_from_ignored",
        "an audit log that ignores its `from` filter",
        "listAuditLog",
        handlers=_handler("listAuditLog", wrap),
    )


FAULTS: tuple[Fault, ...] = (
    _skip_auth(),
    _wrong_type(),
    _undocumented_status(),
    _list_repeats(),
    _list_ignores_limit(),
    _boundary_500(),
    _leaks_403(),
    _gateway_role_skipped(),
    _no_www_authenticate(),
    _not_problem_json(),
    _no_csrf(),
    _full_last_page_cursor(),
    _patch_resets_nested(),
    _expired_pat_accepted(),
    _admin_grants_owner(),
    _member_of_any_workspace(),
    _last_owner_removed(),
    _revoked_key_revoked_again(),
    _foreign_token_renamed(),
    _role_change_unaudited(),
    _ended_run_cancelled_again(),
    _agent_deleted_while_running(),
    _etag_ignored(),
    _update_not_kept(),
    _idempotency_key_ignored(),
    _audit_from_ignored(),
)


def by_name(name: str) -> Fault:
    for fault in FAULTS:
        if fault.name == name:
            return fault
    raise KeyError(name)


__all__ = ["FAULTS", "Fault", "Response", "by_name"]
