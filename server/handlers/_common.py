"""Small helpers shared by the handler modules (no business rules here)."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, RootModel
from sqlalchemy.exc import IntegrityError

from server import audit as audit_log
from server.runtime import roles
from server.runtime.auth import SESSION_COOKIE, Principal
from server.runtime.context import Cookie, Request
from server.runtime.errors import BadRequest, Conflict, FieldError
from server.storage.sessions import SESSION_ABSOLUTE_TTL

API_BASE = "/api/v1"


def plain(value: Any) -> Any:
    """``value`` with pydantic root models and enums replaced by plain JSON-like values."""
    if isinstance(value, RootModel):
        return plain(value.root)
    if isinstance(value, BaseModel):
        # Read the attributes rather than ``model_dump``: generated defaults are not always
        # instances of the field's type (an enum default written as a plain string), which
        # makes pydantic's serializer warn.
        return {
            (info.alias or name): plain(getattr(value, name))
            for name, info in type(value).model_fields.items()
        }
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def body_fields(req: Request) -> tuple[dict[str, Any], frozenset[str]]:
    """The request body as a plain dict (defaults filled) and the fields the client sent."""
    body = req.body
    if isinstance(body, BaseModel):
        data = plain(body)
        sent = frozenset(body.model_fields_set)
        return data, sent
    if isinstance(body, dict):
        return dict(body), frozenset(body)
    return {}, frozenset()


def sent_fields(model: Any) -> frozenset[str]:
    """The fields a (nested) body model was given explicitly."""
    if isinstance(model, BaseModel):
        return frozenset(model.model_fields_set)
    if isinstance(model, dict):
        return frozenset(model)
    return frozenset()


def as_datetime(value: Any, where: str = "body") -> datetime:
    """An aware UTC datetime from a body/query value (a datetime or an RFC 3339 string).

    The runtime has checked the ``date-time`` format; what Python still cannot read (a leap
    second, a year 0) is a 400 on ``where``, never a 500.
    """
    if isinstance(value, datetime):
        stamp = value
    else:
        text = str(value).strip()
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise BadRequest(
                "A timestamp is not a valid RFC 3339 date-time.",
                errors=[FieldError(where, "is not a valid RFC 3339 date-time")],
            ) from None
    if stamp.tzinfo is None or stamp.utcoffset() is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC)


def now() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


@contextmanager
def unique_or_conflict(detail: str) -> Iterator[None]:
    """Turn a unique-constraint race on flush into 409 ``already_exists``."""
    try:
        yield
    except IntegrityError:
        raise Conflict(detail, code="already_exists") from None


def effective_role(principal: Principal, member_role: str) -> str:
    """The role a caller acts with: a PAT's scopes cap the member role."""
    if principal.kind == "pat":
        cap = roles.scope_cap(principal.scopes)
        if cap is not None:
            return roles.lower(member_role, cap)
    return member_role


def session_cookie(req: Request, value: str) -> Cookie:
    """The ``session`` cookie carrying ``value`` (HttpOnly, SameSite=Lax, 7 days)."""
    return Cookie(
        name=SESSION_COOKIE,
        value=value,
        max_age=int(SESSION_ABSOLUTE_TTL.total_seconds()),
        http_only=True,
        same_site="Lax",
        secure=bool(req.state.config.secure_cookies),
        path="/",
    )


def cleared_session_cookie(req: Request) -> Cookie:
    """A ``Set-Cookie`` that removes the session cookie."""
    return Cookie(
        name=SESSION_COOKIE,
        value="",
        max_age=0,
        http_only=True,
        same_site="Lax",
        secure=bool(req.state.config.secure_cookies),
        path="/",
    )


def record(
    req: Request,
    action: str,
    *,
    target_type: str,
    target_id: str,
    summary: str,
    workspace_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Append one audit event in the request's transaction (``server.audit.record``)."""
    audit_log.record(
        req,
        action,
        target_type=target_type,
        target_id=target_id,
        summary=summary[:500],
        workspace_id=workspace_id,
        metadata=_json_safe(plain(metadata or {})),
    )


def rfc3339(stamp: datetime) -> str:
    """``stamp`` as an RFC 3339 UTC string with a ``Z``."""
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
