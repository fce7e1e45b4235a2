"""The step expression language: the grammar, the definition-time check, evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from server.domain import expressions
from server.domain.expressions import EvaluationError, Lookup, ParseError

SCOPE: dict[str, Any] = {
    "input": {"customer": {"name": "Ada", "tags": ["vip", "new"]}, "n": 3, "odd key": True},
    "variables": {"tone": "warm"},
    "run": {"id": "run_x", "attempt": 1},
    "steps": {"draft": {"input": {}, "output": {"text": "Hello"}, "status": "succeeded"}},
}


# ── parsing ─────────────────────────────────────────────────────────────────────────────────


def test_parse_splits_text_and_lookups() -> None:
    pieces = expressions.parse("Dear ${ input.customer.name }, see ${steps.draft.output['text']}!")
    assert pieces == [
        "Dear ",
        Lookup("${ input.customer.name }", "input", ("customer", "name")),
        ", see ",
        Lookup("${steps.draft.output['text']}", "steps", ("draft", "output", "text")),
        "!",
    ]


def test_parse_reads_indexes_and_quoted_keys() -> None:
    (lookup,) = expressions.parse("${input.customer.tags[1]}")
    assert isinstance(lookup, Lookup) and lookup.segments == ("customer", "tags", 1)
    (quoted,) = expressions.parse('${input["odd key"]}')
    assert isinstance(quoted, Lookup) and quoted.segments == ("odd key",)
    (braces,) = expressions.parse("${input['a}b']}")
    assert isinstance(braces, Lookup) and braces.segments == ("a}b",)


def test_a_doubled_dollar_is_a_literal() -> None:
    assert expressions.parse("cost: $${input.n} and $5") == ["cost: ${input.n} and $5"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("${input.x", "no closing"),
        ("${}", "starts with a name"),
        ("${env.HOME}", "'env' is not a root"),
        ("${input.}", "followed by a name"),
        ("${input[x]}", "index or a quoted key"),
        ("${input.a + 1}", "unexpected '+'"),
        ("${input.a()}", "unexpected '('"),
        ("${input.__class__}x${", "starts with a name"),
    ],
)
def test_what_is_not_the_grammar_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as refused:
        expressions.parse(text)
    assert reason in refused.value.reason
    assert refused.value.expression.startswith("${")


def test_lookups_are_bounded_in_length() -> None:
    deep = "${input" + ".a" * (expressions.MAX_SEGMENTS + 1) + "}"
    with pytest.raises(ParseError, match="at most"):
        expressions.parse(deep)


# ── checking a workflow's expressions ───────────────────────────────────────────────────────


def test_check_names_field_and_expression() -> None:
    value = {"a": "${input.x}", "b": ["ok", "${steps.later.output}"], "c": "${nope}"}
    problems = expressions.check(value, "body.steps[1].input", earlier_steps=["first"])
    assert problems == [
        (
            "body.steps[1].input.b[1]",
            "${steps.later.output} names the step 'later', which is not an earlier step",
        ),
        (
            "body.steps[1].input.c",
            "${nope} does not parse: 'nope' is not a root; use input, variables, steps, run",
        ),
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("${steps}", "names no step"),
        ("${steps[0]}", "names no step"),
        ("${steps.first}", "reads a step's input, output, status only"),
        ("${steps.first.result}", "reads a step's input, output, status only"),
        ("${run.token}", "reads the run's id, attempt only"),
    ],
)
def test_check_refuses_what_a_step_cannot_read(text: str, reason: str) -> None:
    [(field, message)] = expressions.check(text, "f", earlier_steps=["first"])
    assert field == "f" and reason in message and message.startswith(text)


def test_check_accepts_what_a_step_can_read() -> None:
    value = {
        "x": "${steps.first.output.text} ${steps.first.status} ${run.id} ${run}",
        "y": "${input} ${variables.tone} plain text $${not.an.expression}",
    }
    assert expressions.check(value, "f", earlier_steps=["first"]) == []


# ── evaluating ──────────────────────────────────────────────────────────────────────────────


def test_a_whole_string_expression_keeps_the_values_type() -> None:
    assert expressions.evaluate("${input.customer.tags}", SCOPE) == ["vip", "new"]
    assert expressions.evaluate("${input.n}", SCOPE) == 3
    assert expressions.evaluate(" ${input.n} ", SCOPE) == " 3 "


def test_text_around_expressions_gets_them_written_in() -> None:
    value = {
        "greeting": "Dear ${input.customer.name} (${input.customer.tags}), ${steps.draft.output.text}",
        "nested": ["${variables.tone}", 7, None],
        "literal": "$${input.n} is ${input.n}",
    }
    assert expressions.evaluate(value, SCOPE) == {
        "greeting": 'Dear Ada (["vip","new"]), Hello',
        "nested": ["warm", 7, None],
        "literal": "${input.n} is 3",
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("${input.missing}", "input has no key 'missing'"),
        ("${input.customer.tags[5]}", "input.customer.tags has 2 items, no index 5"),
        ("${input.n.x}", "input.n is a number, which has no key 'x'"),
        ("${input.customer[0]}", "input.customer is an object, which has no index 0"),
        ("${steps.other.output}", "steps has no key 'other'"),
    ],
)
def test_a_lookup_that_finds_nothing_names_the_expression(text: str, reason: str) -> None:
    with pytest.raises(EvaluationError) as failed:
        expressions.evaluate({"k": [text]}, SCOPE)
    assert failed.value.expression == text
    assert failed.value.reason == reason


def test_evaluation_reaches_only_the_scope() -> None:
    # Python attributes are no keys: nothing but the JSON values is reachable.
    with pytest.raises(EvaluationError):
        expressions.evaluate("${input.customer.name.upper}", SCOPE)
    with pytest.raises(EvaluationError, match="not available"):
        expressions.evaluate("${steps.draft.output}", {"input": {}})
