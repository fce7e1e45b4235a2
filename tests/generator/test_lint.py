"""Conventions are errors in a Gantry spec (one that uses x-gantry-min-role or opts in with
x-gantry-conventions), and not reported on anyone else's; what a server cannot honour is a
warning everywhere."""

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


def test_foreign_spec_is_not_held_to_gantry_conventions(generate: Generate, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, FOREIGN)
    result = generate(spec, tmp_path / "out")
    assert result.status == 0, result.stderr
    assert result.stderr == ""
    assert "handler_name='get_pets'" in (tmp_path / "out" / "operations.py").read_text().replace(
        '"', "'"
    )


def test_opting_in_turns_conventions_on(generate: Generate, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "x-gantry-conventions: true\n" + FOREIGN)
    result = generate(spec, tmp_path / "out")
    assert result.status == 1
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert any("GET /pets has no operationId" in line for line in errors)
    assert any("does not document a 401 response" in line for line in errors)


UNSERVABLE = """\
openapi: 3.0.3
info: {title: Someone else's API, version: "1"}
paths:
  /responses?beta=true:
    get:
      operationId: beta
      responses: {"200": {description: ok}}
  /pets:
    get:
      operationId: listPets
      security: [{api_key: []}]
      parameters:
        - {name: X_Trace, in: header, schema: {type: string}}
        - {name: size, in: query, schema: {type: integer, default: null}}
        - {name: tag, in: query, schema: {type: string, nullable: true, default: null}}
      responses: {"200": {description: ok}}
components:
  securitySchemes:
    api_key: {type: apiKey, in: header, name: api_key}
"""


def test_what_a_server_cannot_honour_is_a_warning(generate: Generate, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, UNSERVABLE)
    result = generate(spec, tmp_path / "out")
    assert result.status == 0, result.stderr
    lines = result.stderr.splitlines()
    assert all(": warning: " in line for line in lines)
    assert [line.split(":", 3)[1:3] for line in lines] == [
        ["4", "3"],  # the path key with a query string
        ["13", "11"],  # the header parameter with an underscore
        ["14", "59"],  # default null on a non-nullable integer (not the nullable string)
        ["19", "41"],  # the API key header with an underscore
    ], result.stderr
    assert "holds a query string" in lines[0]
    assert "'X_Trace'" in lines[1] and "drop" in lines[1]
    assert "default null" in lines[2]
    assert "'api_key'" in lines[3]


def test_strict_fails_on_warnings_and_writes_nothing(generate: Generate, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, UNSERVABLE)
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
