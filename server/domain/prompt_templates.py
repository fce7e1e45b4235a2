"""Prompt templates: one syntax (Jinja's), checked when saved and rendered in a sandbox.

A template may read only the variables its prompt declares, and a render needs a value for
each of them and no other. What an author can write is the expression language of Jinja
(``{{ }}``, ``{% if %}``, ``{% for %}``, ``{% set %}``, ``{% with %}``, built-in filters and
tests); what the sandbox exists for is that they cannot reach anything else:

* rendering runs in Jinja's ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``, no
  loader (nothing is read from the file system), no globals (``range``, ``lipsum``, ``cycler``,
  ``dict`` … are gone) and autoescape off (prompts are not HTML);
* the check refuses, before anything runs, names and attributes starting with ``_`` (the way to
  Python's internals: ``''.__class__.__mro__``, ``x._TemplateReference__context``), ``self``,
  the ``attr`` filter, recursive loops, macros, blocks, ``include``, ``import`` and ``extends``,
  and any variable not declared; the sandbox refuses at run time what the check cannot see
  (an unsafe attribute named by a variable, ``'{0.__class__}'.format(x)``);
* a render is bounded: at most ``MAX_STEPS`` loop iterations and calls, ``MAX_SIZE`` characters
  (or items) in any value an operator or filter builds, ``MAX_SIZE`` characters of output and
  ``MAX_SECONDS`` of time, checked as it runs.

Every refusal is ``Invalid`` with a stable code: ``template_error`` (does not parse, refused
construct, a failure or a limit while rendering), ``undeclared_variables`` (a variable the
prompt does not declare), ``missing_variables`` (a declared variable without a value).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment

from server.domain.errors import Invalid

MAX_STEPS = 10_000
MAX_SIZE = 1_048_576
MAX_SECONDS = 1.0

# Words a declared variable may not be: the language's own, and the names the sandbox removes.
RESERVED_NAMES = frozenset(
    {
        "true", "false", "none", "True", "False", "None",
        "and", "or", "not", "in", "is", "if", "else", "elif", "for", "recursive",
        "loop", "self", "super", "caller", "varargs", "kwargs",
        "range", "lipsum", "cycler", "joiner", "namespace", "dict",
    }
)  # fmt: skip
_REFUSED_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Block: "blocks",
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
}
_REFUSED_FILTERS = frozenset({"attr"})
# String methods that build values larger than their inputs (``'x'.ljust(10**9)``) or format
# with attribute access; the equivalent filters are bounded instead.
_REFUSED_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "format", "format_map"}
)
# Node names the loop and concatenation guards are called by: not identifiers, so no template
# can name them.
_LOOP_GUARD = "gantry-loop"
_CONCAT_GUARD = "gantry-concat"
_PRINTF_WIDTH = re.compile(r"%[-#0 +]*(\d{5,}|\*)|%[-#0 +]*\d*\.(\d{5,}|\*)")


# ── refusals ────────────────────────────────────────────────────────────────────────────────


def _template_error(detail: str, field: str) -> Invalid:
    return Invalid(detail, code="template_error", errors=[(field, detail)])


def _why(exc: BaseException) -> str:
    """An exception's message, short enough for a problem document, without a final period."""
    text = str(getattr(exc, "message", None) or exc).strip().rstrip(".")
    return text if len(text) <= 300 else text[:297] + "..."


class _LimitExceeded(Exception):
    """A render went past one of its bounds."""


# ── the budget of one render ────────────────────────────────────────────────────────────────


@dataclass(slots=True)
class _Budget:
    deadline: float
    steps: int = 0
    output: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _LimitExceeded(f"more than {MAX_STEPS} loop iterations and calls")
        if time.monotonic() > self.deadline:
            raise _LimitExceeded(f"longer than {MAX_SECONDS:g} s")

    def emit(self, chunk: str) -> None:
        self.output += len(chunk)
        if self.output > MAX_SIZE:
            raise _LimitExceeded(f"more than {MAX_SIZE} characters of output")
        if time.monotonic() > self.deadline:
            raise _LimitExceeded(f"longer than {MAX_SECONDS:g} s")


_BUDGET: ContextVar[_Budget | None] = ContextVar("prompt_template_budget", default=None)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()


def _sized(value: Any) -> Any:
    """``value``, if it is not larger than ``MAX_SIZE`` characters or items."""
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_SIZE:
        raise _LimitExceeded(f"a value of more than {MAX_SIZE} characters or items")
    return value


def _projected(size: int) -> None:
    if size > MAX_SIZE:
        raise _LimitExceeded(f"a value of more than {MAX_SIZE} characters or items")


# ── the environment ─────────────────────────────────────────────────────────────────────────


class _PromptEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with the operators and calls that could build huge values bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                    _projected(len(seq) * max(count, 0))
        elif operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise _LimitExceeded("an exponent above 64")
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                _projected(len(left) + len(right))
        elif operator == "%" and isinstance(left, str) and _PRINTF_WIDTH.search(left):
            raise _LimitExceeded("a %-format width or precision of 5 digits or more")
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # Jinja's own signature: ``self`` may be a template's keyword argument
        __context: Any,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _step()
        if (
            isinstance(getattr(__obj, "__self__", None), str)
            and getattr(__obj, "__name__", "") in _REFUSED_METHODS
        ):
            raise SecurityError(f"the string method {__obj.__name__!r} is not allowed")
        return _sized(super().call(__context, __obj, *args, **kwargs))


def _loop_guard(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _step()
        yield item


def _concat_guard(parts: Sequence[Any]) -> str:
    texts = [str(part) for part in parts]
    _projected(sum(map(len, texts)))
    return "".join(texts)


def _bounded(filter_function: Callable[..., Any], size: Callable[..., int]) -> Callable[..., Any]:
    """``filter_function``, refused when ``size(*args)`` (its result's size) is too large."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        _projected(size(*args, **kwargs))
        return _sized(filter_function(*args, **kwargs))

    bounded.__name__ = getattr(filter_function, "__name__", "filter")
    return bounded


def _text(value: Any) -> int:
    return len(str(value))


def _replace_size(value: Any, old: Any, new: Any, count: Any = None, **_: Any) -> int:
    text, old_text, new_text = str(value), str(old), str(new)
    hits = len(text) + 1 if not old_text else text.count(old_text)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new_text)


def _indent_size(value: Any, width: Any = 4, *_: Any, **__: Any) -> int:
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 4
    return _text(value) + (str(value).count("\n") + 1) * max(pad, 0)


def _wordwrap_size(
    value: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, **_: Any
) -> int:
    lines = _text(value) // max(int(width) if isinstance(width, int) else 79, 1) + 1
    return _text(value) + lines * len(str(wrapstring or "\n"))


def _join_size(value: Any, d: Any = "", attribute: Any = None) -> int:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return sum(_text(v) for v in items) + len(items) * len(str(d))


def _format_size(value: Any, *args: Any, **kwargs: Any) -> int:
    if isinstance(value, str) and _PRINTF_WIDTH.search(value):
        raise _LimitExceeded("a %-format width or precision of 5 digits or more")
    return _text(value) + sum(_text(a) for a in args) + sum(_text(v) for v in kwargs.values())


def _center_size(value: Any, width: Any = 80) -> int:
    return max(_text(value), int(width) if isinstance(width, int) else 80)


@lru_cache(maxsize=1)
def _environment() -> _PromptEnvironment:
    env = _PromptEnvironment(undefined=StrictUndefined, autoescape=False, loader=None)
    env.globals.clear()
    env.filters[_LOOP_GUARD] = _loop_guard
    env.filters[_CONCAT_GUARD] = _concat_guard
    for name, size in (
        ("replace", _replace_size),
        ("indent", _indent_size),
        ("wordwrap", _wordwrap_size),
        ("join", _join_size),
        ("format", _format_size),
        ("center", _center_size),
    ):
        env.filters[name] = _bounded(FILTERS[name], size)
    return env


# ── checking ────────────────────────────────────────────────────────────────────────────────


def reserved_variables(declared: Iterable[str]) -> list[str]:
    """The declared names a template could not use as variables."""
    return sorted(name for name in declared if name in RESERVED_NAMES)


def check(content: str, declared: Iterable[str], *, field: str = "body.content") -> None:
    """Refuse a template that does not parse, reaches for what the sandbox refuses, or uses a
    variable that is not in ``declared``."""
    _compiled(content, frozenset(declared), field)


@lru_cache(maxsize=128)  # recent texts, compiled: a render of one skips the parse
def _compiled(content: str, declared: frozenset[str], field: str) -> Any:
    env = _environment()
    try:
        tree = env.parse(content)
    except TemplateSyntaxError as exc:
        raise _template_error(
            f"The template does not parse: {_why(exc)} (line {exc.lineno}).", field
        ) from None
    _refuse_constructs(tree, field)
    try:
        used = meta.find_undeclared_variables(tree)  # compiles: an unknown filter shows here
    except TemplateError as exc:
        raise _template_error(f"The template cannot be compiled: {_why(exc)}.", field) from None
    undeclared = sorted(used - declared)
    if undeclared:
        raise Invalid(
            f"The template uses variables the prompt does not declare: {', '.join(undeclared)}.",
            code="undeclared_variables",
            errors=[(field, f"uses {name!r}, which is not in variables") for name in undeclared],
        )
    _guard(tree)
    try:
        return env.from_string(tree)
    except TemplateError as exc:  # an unknown filter or test
        raise _template_error(f"The template cannot be compiled: {_why(exc)}.", field) from None


def _refuse_constructs(tree: nodes.Template, field: str) -> None:
    for node in tree.find_all(nodes.Node):
        refused = _REFUSED_STATEMENTS.get(type(node))
        if refused is not None:
            raise _template_error(f"Templates cannot use {refused}.", field)
        if isinstance(node, nodes.Name) and (node.name == "self" or node.name.startswith("_")):
            raise _template_error(f"Templates cannot use the name {node.name!r}.", field)
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise _template_error(f"Templates cannot read the attribute {node.attr!r}.", field)
        if (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and node.arg.value.startswith("_")
        ):
            raise _template_error(f"Templates cannot read the item {node.arg.value!r}.", field)
        if isinstance(node, nodes.Filter) and node.name in _REFUSED_FILTERS:
            raise _template_error(f"Templates cannot use the {node.name!r} filter.", field)
        if isinstance(node, nodes.Keyword) and node.key == "attribute":
            value = node.value.value if isinstance(node.value, nodes.Const) else None
            if isinstance(value, str) and value.startswith("_"):
                raise _template_error(f"Templates cannot read the attribute {value!r}.", field)
        if isinstance(node, nodes.For) and node.recursive:
            raise _template_error("Templates cannot use recursive loops.", field)


def _guard(tree: nodes.Template) -> None:
    """Route every loop through the step budget and every ``~`` through the size bound."""
    for loop in list(tree.find_all(nodes.For)):
        loop.iter = nodes.Filter(loop.iter, _LOOP_GUARD, [], [], None, None, lineno=loop.lineno)
    for concat in list(tree.find_all(nodes.Concat)):
        parts = nodes.List(list(concat.nodes), lineno=concat.lineno)
        guarded = nodes.Filter(parts, _CONCAT_GUARD, [], [], None, None, lineno=concat.lineno)
        concat.nodes = [guarded]


# ── rendering ───────────────────────────────────────────────────────────────────────────────


def render(
    content: str,
    declared: Sequence[str],
    values: Mapping[str, Any],
    *,
    field: str = "body.variables",
    template_field: str = "body.content",
) -> str:
    """``content`` rendered with ``values``: exactly the declared variables, within the limits."""
    template = _compiled(content, frozenset(declared), template_field)
    undeclared = sorted(set(values) - set(declared))
    if undeclared:
        raise Invalid(
            f"Values were given for variables the prompt does not declare: {', '.join(undeclared)}.",
            code="undeclared_variables",
            errors=[(f"{field}.{name}", "is not a declared variable") for name in undeclared],
        )
    missing = [name for name in declared if name not in values]
    if missing:
        raise Invalid(
            f"Declared variables have no value: {', '.join(missing)}.",
            code="missing_variables",
            errors=[(f"{field}.{name}", "is required") for name in missing],
        )
    budget = _Budget(deadline=time.monotonic() + MAX_SECONDS)
    token = _BUDGET.set(budget)
    parts: list[str] = []
    try:
        for chunk in template.generate(dict(values)):
            budget.emit(chunk)
            parts.append(chunk)
    except _LimitExceeded as exc:
        raise _template_error(f"Rendering stopped: {_why(exc)}.", template_field) from None
    except SecurityError as exc:
        raise _template_error(f"The sandbox refused: {_why(exc)}.", template_field) from None
    except TemplateError as exc:
        raise _template_error(f"Rendering failed: {_why(exc)}.", template_field) from None
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
        raise _template_error(
            f"Rendering failed: {type(exc).__name__}: {_why(exc)}.", template_field
        ) from None
    finally:
        _BUDGET.reset(token)
    return "".join(parts)
