"""Prompt templates: one syntax, checked when saved, rendered in a sandbox that no known Jinja
escape gets out of, with exactly the declared variables and bounded work."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from server.domain import prompt_templates
from server.domain.errors import Invalid

# The known ways out of a Jinja sandbox (or of a template engine given Python objects): each
# reaches Python internals, the module globals (and from there ``os``), or the template's own
# context. ``x`` and ``y`` are declared variables.
ESCAPES = {
    "class_mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler_globals": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "joiner_globals": "{{ joiner.__init__.__globals__ }}",
    "namespace_globals": "{{ namespace.__init__.__globals__ }}",
    "lipsum_globals": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "template_reference": "{{ self._TemplateReference__context }}",
    "self": "{{ self }}",
    "request": "{{ request.application.__globals__ }}",
    "config": "{{ config.items() }}",
    "format_attribute": "{{ '{0.__class__.__init__.__globals__}'.format(x) }}",
    "format_map_attribute": "{{ '{x.__class__}'.format_map({'x': x}) }}",
    "attr_filter": "{{ x|attr('__class__') }}",
    "attr_filter_dynamic": "{{ x|attr(y) }}",
    "map_attribute": "{{ [x]|map(attribute='__class__')|list }}",
    "item_dunder": "{{ x['__class__'] }}",
    "dynamic_item": "{{ x[y] }}",
    "private_attribute": "{{ x._private }}",
    "underscore_name": "{{ _x }}",
    "include": "{% include 'etc/passwd' %}",
    "import": "{% import 'os' as os %}",
    "extends": "{% extends 'base.html' %}",
    "macro": "{% macro m() %}{{ caller() }}{% endmacro %}",
    "range_globals": "{{ range.__self__ }}",
}
REFUSED_CODES = {"template_error", "undeclared_variables"}


def test_the_escapes_are_real() -> None:
    """Without the sandbox these templates do reach Python objects: the refusals below are not
    refusals of nonsense."""
    plain = jinja2.Environment()
    assert "object" in plain.from_string(ESCAPES["class_mro"]).render()
    assert "popen" in plain.from_string("{{ cycler.__init__.__globals__.os.__dict__ }}").render()
    assert plain.from_string("{{ '{0.__class__}'.format(x) }}").render(x="") == "<class 'str'>"


@pytest.mark.parametrize("template", ESCAPES.values(), ids=ESCAPES.keys())
def test_a_template_cannot_escape_when_rendered(template: str) -> None:
    with pytest.raises(Invalid) as refused:
        prompt_templates.render(template, ["x", "y"], {"x": "text", "y": "__class__"})
    assert refused.value.code in REFUSED_CODES


@pytest.mark.parametrize("template", ESCAPES.values(), ids=ESCAPES.keys())
def test_a_template_that_could_escape_is_refused_with_400(gantry: Any, template: str) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    before = gantry.counts()["prompts"]
    response = gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "escape", "content": template, "variables": ["x", "y"]},
    )
    statically = response.status_code == 400
    if statically:  # refused when saved: never compiled, never run
        assert response.json["code"] in REFUSED_CODES
        assert gantry.counts()["prompts"] == before
        return
    # What only shows at run time (an attribute named by a variable's value) is saved, and
    # refused by the sandbox when rendered.
    assert response.status_code == 201, response.json
    with pytest.raises(Invalid) as refused:
        prompt_templates.render(template, ["x", "y"], {"x": "text", "y": "__class__"})
    assert refused.value.code == "template_error"


def test_a_refused_template_is_never_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    real = jinja2.Template.generate

    def spy(self: jinja2.Template, *args: Any, **kwargs: Any) -> Any:
        ran.append("generate")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Template, "generate", spy)
    for name in ("class_mro", "cycler_globals", "template_reference", "attr_filter", "include"):
        with pytest.raises(Invalid):
            prompt_templates.render(ESCAPES[name], ["x", "y"], {"x": "", "y": ""})
    assert ran == []
    assert prompt_templates.render("{{ x }}", ["x"], {"x": "ok"}) == "ok"
    assert ran == ["generate"]


def test_undeclared_variables_are_named(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    problem = gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "k", "content": "{{ a }} {{ b }} {{ c }}", "variables": ["a"]},
        expect=400,
        code="undeclared_variables",
    ).json
    assert "b, c" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["body.content", "body.content"]
    assert "'b'" in problem["errors"][0]["message"]
    created = gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "k", "content": "{{ a }}", "variables": ["a"]},
        expect=201,
    ).json
    gantry.admin.patch(
        f"/prompts/{created['id']}",
        json={"content": "{{ a }}{{ zz }}"},
        expect=400,
        code="undeclared_variables",
    )
    gantry.admin.patch(
        f"/prompts/{created['id']}", json={"variables": []}, expect=400, code="undeclared_variables"
    )
    # Locals of the template are not variables of the prompt.
    gantry.admin.patch(
        f"/prompts/{created['id']}",
        json={
            "content": "{% set n = a|upper %}{% for c in n %}{{ c }}{{ loop.index }}{% endfor %}"
        },
        expect=200,
    )


def test_reserved_words_cannot_be_variables(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    problem = gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "k", "content": "hi", "variables": ["loop", "name", "true"]},
        expect=400,
        code="validation_failed",
    ).json
    assert [e["field"] for e in problem["errors"]] == ["body.variables", "body.variables"]


def test_a_template_that_does_not_parse_is_refused_with_its_line(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    problem = gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "k", "content": "one\ntwo {% if a %}", "variables": ["a"]},
        expect=400,
        code="template_error",
    ).json
    assert "line 2" in problem["detail"]
    gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "k", "content": "{{ a|no_such_filter }}", "variables": ["a"]},
        expect=400,
        code="template_error",
    )


def test_rendering_needs_exactly_the_declared_variables() -> None:
    template = "Hello {{ name }}, {{ topic|default('anything') }}"
    with pytest.raises(Invalid) as missing:
        prompt_templates.render(template, ["name", "topic"], {"name": "Ada"})
    assert missing.value.code == "missing_variables"
    assert missing.value.errors == (("body.variables.topic", "is required"),)
    with pytest.raises(Invalid) as extra:
        prompt_templates.render(template, ["name", "topic"], {"name": "A", "topic": "B", "x": 1})
    assert extra.value.code == "undeclared_variables"
    assert extra.value.errors == (("body.variables.x", "is not a declared variable"),)
    assert prompt_templates.render(template, ["name", "topic"], {"name": "A", "topic": "B"}) == (
        "Hello A, B"
    )


def test_the_syntax_renders_as_documented() -> None:
    template = (
        "{{ name|upper }}: {% if items %}{% for i in items %}{{ loop.index }}.{{ i }} "
        "{% endfor %}{% else %}none{% endif %}{{ '<b>' }} {{ count + 1 }} {{ user.name }}"
    )
    values = {"name": "list", "items": ["a", "b"], "count": 1, "user": {"name": "Ada"}}
    out = prompt_templates.render(template, ["name", "items", "count", "user"], values)
    assert out == "LIST: 1.a 2.b <b> 2 Ada"  # not HTML-escaped


@pytest.mark.parametrize(
    ("template", "values"),
    [
        ("{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}", {"x": "y" * 200}),
        ("{{ x * 2000000 }}", {"x": "y"}),
        ("{{ x ~ x }}", {"x": "y" * 600_000}),
        ("{{ x + x }}", {"x": "y" * 600_000}),
        ("{{ x|center(2000000) }}", {"x": "y"}),
        ("{{ x|replace('y', x) }}", {"x": "y" * 2_000}),
        ("{{ x|indent(2000000) }}", {"x": "a\nb"}),
        ("{{ x.ljust(2000000) }}", {"x": "y"}),
        ("{{ '%099999d' % 1 }}{{ x }}", {"x": ""}),
        ("{{ 10 ** 100000 }}{{ x }}", {"x": ""}),
        ("{% for a in x %}{{ x }}{% endfor %}", {"x": "y" * 2_000}),
    ],
    ids=[
        "nested_loops",
        "repeat",
        "concat",
        "plus",
        "center",
        "replace",
        "indent",
        "ljust",
        "printf_width",
        "power",
        "output",
    ],
)
def test_rendering_is_bounded(template: str, values: dict[str, Any]) -> None:
    with pytest.raises(Invalid) as stopped:
        prompt_templates.render(template, list(values), values)
    assert stopped.value.code == "template_error"


def test_rendering_stops_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompt_templates, "MAX_SECONDS", 0.0)
    with pytest.raises(Invalid) as stopped:
        prompt_templates.render("{% for c in x %}{{ c }}{% endfor %}", ["x"], {"x": "abc"})
    assert "longer than" in stopped.value.detail
