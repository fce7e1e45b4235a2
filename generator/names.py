"""The one place a spec string becomes a Python name.

Every identifier a template writes (handler modules and functions, parameter names, Flask rule
variables) comes from `identifier`, so no unsanitised name can reach generated code.
"""

from __future__ import annotations

import keyword
import re

# Builtins a generated name must not shadow. Written out, not read from `builtins`, so the output
# does not depend on the interpreter (site adds `exit`, `help`… only sometimes).
_BUILTINS = frozenset(
    [
        "abs",
        "aiter",
        "all",
        "anext",
        "any",
        "ascii",
        "bin",
        "bool",
        "breakpoint",
        "bytearray",
        "bytes",
        "callable",
        "chr",
        "classmethod",
        "compile",
        "complex",
        "copyright",
        "credits",
        "delattr",
        "dict",
        "dir",
        "divmod",
        "enumerate",
        "eval",
        "exec",
        "exit",
        "filter",
        "float",
        "format",
        "frozenset",
        "getattr",
        "globals",
        "hasattr",
        "hash",
        "help",
        "hex",
        "id",
        "input",
        "int",
        "isinstance",
        "issubclass",
        "iter",
        "len",
        "license",
        "list",
        "locals",
        "map",
        "max",
        "memoryview",
        "min",
        "next",
        "object",
        "oct",
        "open",
        "ord",
        "pow",
        "print",
        "property",
        "quit",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "setattr",
        "slice",
        "sorted",
        "staticmethod",
        "str",
        "sum",
        "super",
        "tuple",
        "type",
        "vars",
        "zip",
    ]
)

_WORD_BOUNDARY = re.compile(
    r"""
    [A-Z]+(?=[A-Z][a-z])      # an acronym before a capitalised word: HTTPServer → HTTP
    | [A-Z]?[a-z]+[0-9]*      # a (capitalised) lower-case word, with its digits: v1, oauth2
    | [A-Z]+[0-9]*            # an acronym: HTTP2
    | [0-9]+[a-z]*            # a number, with its suffix: 2fa
    """,
    re.VERBOSE,
)


def words(text: str) -> list[str]:
    """Split `text` into lower-case words at case changes and non-alphanumeric characters."""
    return [word.lower() for word in _WORD_BOUNDARY.findall(text)]


def snake_case(text: str) -> str:
    """`listPets`, `list-pets`, `List Pets` → `list_pets`."""
    return "_".join(words(text))


def pascal_case(text: str) -> str:
    """`list_pets`, `list-pets` → `ListPets`."""
    return "".join(word.capitalize() for word in words(text))


def identifier(text: str) -> str:
    """A safe snake_case Python identifier: not a keyword or builtin, not starting with a digit."""
    name = snake_case(text) or "_"
    if name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in _BUILTINS:
        name += "_"
    return name


def handler_name_from_route(method: str, path: str) -> str:
    """A stable handler name for an operation without an operationId.

    `GET /workspaces/{workspace_id}` → `get_workspaces_by_workspace_id`.
    """
    parts = [method.lower()]
    for segment in path.strip("/").split("/"):
        for literal, variable in re.findall(r"([^{]*)(?:\{([^}]*)\})?", segment):
            parts.extend(words(literal))
            if variable:
                parts.append("by_" + snake_case(variable))
    if len(parts) == 1:
        parts.append("root")
    return identifier("_".join(parts))
