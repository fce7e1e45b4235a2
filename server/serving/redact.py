"""Credentials never reach the logs: ``redact`` blanks them in a line, ``RedactingLogger`` applies
it to everything gunicorn logs (the access log's request line, query and headers, its warnings
about malformed requests), whatever the log format."""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger

REDACTED = "[redacted]"

# A query parameter whose name says it holds a secret: access_token, api_key, client_secret, …
_SECRET_PARAMETER = re.compile(
    r"(?i)((?:^|[?&;\s\"])[\w.\-\[\]%]*?(?:token|key|secret|passw|session|auth|sig|credential)"
    r"[\w.\-\[\]%]*=)[^&;\s\"#]*"
)
# The shape of Gantry's secrets (a personal access token, an API key), wherever they appear.
_SECRET_VALUE = re.compile(r"\b(pat|sk)_[A-Za-z0-9]{8,}")
# The shape of upstream providers' keys (OpenAI's ``sk-…``, ``sk-proj-…``, Anthropic's
# ``sk-ant-…``), which a provider's owner sends Gantry to store.
_UPSTREAM_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
# An Authorization header's credentials, should a log format include the header.
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|digest|token)\s+[\w.~+/=\-]+")


def redact(text: str) -> str:
    """``text`` with secret query values, token-shaped strings and credentials replaced."""
    text = _SECRET_PARAMETER.sub(rf"\g<1>{REDACTED}", text)
    text = _AUTH_SCHEME.sub(rf"\g<1> {REDACTED}", text)
    text = _UPSTREAM_KEY.sub(f"sk-{REDACTED}", text)
    return _SECRET_VALUE.sub(rf"\g<1>_{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Formats each record once and redacts the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with ``RedactSecrets`` on its error and access logs."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactSecrets) for f in log.filters):
                log.addFilter(RedactSecrets())
