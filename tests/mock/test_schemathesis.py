"""Every corpus spec's mock passes schemathesis's conformance checks against its own document.

One pytest item per operation (in-process WSGI, no sockets). The mock app is built on the first
request, so collecting the tests costs only the parsing of the specs. A second run per spec sends
only invalid requests (`--mode negative`): what the mock refuses must still be a response the
operation documents, in a documented media type and shape.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.mock.app import create_mock_app

CORPUS_DIR = Path(__file__).resolve().parents[1] / "generator" / "corpus"
CORPUS = sorted([*CORPUS_DIR.glob("*.yaml"), *CORPUS_DIR.glob("*.json")])
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)
# Content-addressed, so it is safe (and quick) to share between runs.
CACHE = Path(tempfile.gettempdir()) / "gantry-test-mock-cache"
# Credentials for the schemes the corpus uses; the mock checks only that they are there.
AUTH_HEADERS = {"Authorization": "Bearer mock-token", "X-API-Key": "mock-key"}


class LazyMock:
    """A WSGI app that builds the mock of `spec` on its first request."""

    def __init__(self, spec: Path) -> None:
        self.spec = spec
        self.app: Any = None

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if self.app is None:
            self.app = create_mock_app(self.spec, cache_dir=CACHE)
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


_MOCKS: dict[Path, LazyMock] = {}


def _conformance_test(spec: Path, *, negative: bool = False) -> Callable[..., None]:
    schema = schemathesis.openapi.from_path(spec)
    schema.app = _MOCKS.setdefault(spec, LazyMock(spec))
    schema.config.update(headers=AUTH_HEADERS)
    if negative:
        schema.config.generation.update(modes=[GenerationMode.NEGATIVE])
        schema.config.phases.update(phases=["coverage", "fuzzing"])
    else:
        schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])

    @schema.parametrize()
    @settings(
        max_examples=8,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def test(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    return test  # type: ignore[no-any-return]


for _spec in CORPUS:
    globals()[f"test_mock_conforms_{_spec.stem}"] = _conformance_test(_spec)
    globals()[f"test_mock_refusals_conform_{_spec.stem}"] = _conformance_test(_spec, negative=True)
