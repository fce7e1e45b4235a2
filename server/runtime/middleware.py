"""Request-wide concerns that are not per-operation: request ids and security headers."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
# The docs page loads only its own bundled assets; no CDN, no inline script.
HTML_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


def install_request_hooks(app: Flask) -> None:
    """Give every request an id and every response the id and the security headers."""

    @app.before_request
    def _assign_request_id() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else f"req_{uuid.uuid4().hex}"

    @app.after_request
    def _decorate(response: Response) -> Response:
        response.headers["X-Request-Id"] = getattr(g, "request_id", "")
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", HTML_CSP)
        return response
