"""Conventions are errors in a Gantry spec (one that uses x-gantry-min-role), warnings elsewhere."""

from __future__ import annotations

from pathlib import Path

from generator_support import Generate, write_spec

FOREIGN = """\
openapi: 3.1.0
info: {title: Someone else's API, version: "1"}
security: [{bearer: []}]
paths:
  /pets:
    get:
      responses:
        "200": {description: ok}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
"""


def test_foreign_spec_generates_with_warnings(generate: Generate, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, FOREIGN)
    result = generate(spec, tmp_path / "out")
    assert result.status == 0, result.stderr
    lines = result.stderr.splitlines()
    assert all(": warning: " in line for line in lines)
    assert any("has no operationId" in line for line in lines)
    assert any("does not document a 401 response" in line for line in lines)
    assert "handler_name='get_pets'" in (tmp_path / "out" / "operations.py").read_text().replace(
        '"', "'"
    )


def test_strict_fails_on_warnings_and_writes_nothing(generate: Generate, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, FOREIGN)
    result = generate(spec, tmp_path / "out", strict=True)
    assert result.status == 1
    assert "nothing written" in result.stderr
    assert not (tmp_path / "out").exists()


def test_gantry_profile_turns_conventions_into_errors(generate: Generate, tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        FOREIGN.replace(
            "  /pets:\n",
            "  /health:\n    get:\n      operationId: health\n"
            "      security: []\n      x-gantry-min-role: public\n"
            "      responses: {'200': {description: ok}}\n  /pets:\n",
        ),
    )
    result = generate(spec, tmp_path / "out")
    assert result.status == 1
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert any("GET /pets has no operationId" in line for line in errors)
    assert any("GET /pets has no x-gantry-min-role" in line for line in errors)
    assert any("does not document a 403 response" in line for line in errors)


def test_unknown_role_and_unknown_security_scheme(generate: Generate, tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        """\
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      x-gantry-min-role: wizard
      security: [{nope: []}]
      responses:
        "200": {description: ok}
        "401": {description: denied}
        "403": {description: denied}
""",
    )
    result = generate(spec, tmp_path / "out")
    assert result.status == 1
    assert ":7:7: error: x-gantry-min-role 'wizard' is not one of public|any|" in result.stderr
    assert ":8:18: error: security scheme 'nope' is not defined" in result.stderr
