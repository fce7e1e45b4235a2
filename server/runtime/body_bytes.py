"""The request body's bytes: what ``request.get_data(cache=True)`` returns, for less.

Werkzeug reads a body through a ``LimitedStream`` built per request, after parsing
``Content-Length`` through its header wrapper, which costs more than decoding and validating a
small JSON body. In the usual case (a plain decimal ``Content-Length``, no ``Transfer-Encoding``,
within the size limit) these read exactly that many bytes from ``wsgi.input``, with the same errors
as Werkzeug for a short body, and leave them where ``request.get_data()`` finds them. Every other
case is Werkzeug's own.

A server that sets ``wsgi.input_terminated`` (gunicorn does) ends the input stream itself, at the
end of the body ``Content-Length`` declares; reading that many bytes reads the same body Werkzeug
reads up to the end of the stream.

Under ``gantry serve`` a read that passes the request's read deadline raises ``RequestTimeout``
(408) from the input stream itself (``server.serving.deadline``); neither reader turns it into a
disconnect, so it reaches the client as a 408 problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from flask import Request as FlaskRequest
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request as WerkzeugRequest
from werkzeug.wsgi import get_content_length


def _plain_length(environ: dict[str, Any]) -> int | None:
    """``Content-Length`` when it is a plain decimal and nothing else decides the body's end."""
    raw = environ.get("CONTENT_LENGTH")
    if raw and raw.isascii() and raw.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ:
        return int(raw)
    return None


def content_length(request: WerkzeugRequest) -> int | None:
    """``request.content_length``: ``None`` for a streamed (chunked) or undeclared body."""
    environ = request.environ
    length = _plain_length(environ)
    return length if length is not None else get_content_length(environ)


def read_body(request: WerkzeugRequest) -> bytes:
    """``request.get_data(cache=True)``."""
    length = _plain_length(request.environ)
    if (
        length is None
        or "stream" in request.__dict__  # Werkzeug's stream is open: it owns the input
        or getattr(request, "_cached_data", None) is not None
    ):
        return request.get_data(cache=True)
    limit = max_content_length(request)
    if limit is not None and length > limit:
        return request.get_data(cache=True)  # Werkzeug raises the 413
    data = _read_exactly(request.environ["wsgi.input"], length)
    request._cached_data = data  # where get_data() looks for it
    return data


# Flask's ``Request.max_content_length``: a limit set on the request, else the app's config.
_FLASK_LIMIT = FlaskRequest.__dict__["max_content_length"]
# One call instead of the several each use of the proxy makes.
_current_app: Callable[[], Flask] = current_app._get_current_object  # type: ignore[attr-defined]


def max_content_length(request: WerkzeugRequest) -> int | None:
    """``request.max_content_length``: what Flask's property answers, without the look-ups
    through the ``current_app`` proxy that make it cost more than reading a small body."""
    if getattr(type(request), "max_content_length", None) is not _FLASK_LIMIT:
        return request.max_content_length  # not Flask's property: ask it
    override: int | None = request._max_content_length  # type: ignore[attr-defined]
    if override is not None:
        return override
    try:
        limit: int | None = _current_app().config["MAX_CONTENT_LENGTH"]
    except RuntimeError:  # no app context: the property knows what to do
        return request.max_content_length
    return limit


def _read_exactly(stream: Any, length: int) -> bytes:
    """``length`` bytes, or ``ClientDisconnected`` (400) when the input ends or fails first,
    as Werkzeug's ``LimitedStream`` answers."""
    chunks: list[bytes] = []
    remaining = length
    try:
        while remaining > 0:
            chunk = stream.read(remaining)
            if not chunk:
                raise ClientDisconnected()
            chunks.append(chunk)
            remaining -= len(chunk)
    except (OSError, ValueError):
        raise ClientDisconnected() from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
