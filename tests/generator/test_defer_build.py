"""Generated models are built on first use (`defer_build`), not at import, and build to the schemas
an import-time build gives: importing stays linear in the schemas and validation does not change."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from generator_support import GOLDEN
from pydantic import BaseModel

from generator.defer_build import defer_model_builds

GOLDEN_MODELS = sorted(GOLDEN.glob("*/models.py"))


def _deferred(source: str) -> str:
    return defer_model_builds(source, ast.parse(source))


def _import(source: str, folder: Path, name: str) -> ModuleType:
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves forward references through it
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _pydantic_classes(module: ModuleType) -> dict[str, type[BaseModel]]:
    """The module's pydantic classes: its own, and the bases pydantic made for it
    (`_DeferredRootModel[list[Pet]]`)."""
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == module.__name__
    }


def _schema_classes(source: str) -> list[str]:
    """The classes the module defines for schemas, in its order."""
    tree = ast.parse(source)
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name != "_DeferredRootModel"
    ]


def _undeferred(source: str) -> str:
    """A generated module without what `defer_model_builds` added: what datamodel-code-generator
    wrote, as far as pydantic can tell (the unused deferred root model aside)."""
    source = re.sub(r"^ +model_config = ConfigDict\(defer_build=True\)\n", "", source, flags=re.M)
    source = re.sub(r"defer_build=True,\s*", "", source)
    assert "defer_build" not in source
    return source.replace("(_DeferredRootModel[", "(RootModel[")


def _rebuilt_at_import(source: str) -> set[str]:
    """The classes a trailing `Foo.model_rebuild()` builds at import (forward references)."""
    return set(re.findall(r"^(\w+)\.model_rebuild\(\)$", source, flags=re.MULTILINE))


def _build(model: type[BaseModel]) -> None:
    """Build the model as the server does: by the first use of its validator."""
    assert model.__pydantic_validator__.validate_python is not None
    assert model.__pydantic_complete__


PETS = '''from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, RootModel


class Kind(StrEnum):
    cat = "cat"


class PetId(RootModel[str]):
    root: Annotated[str, Field(max_length=8)]
    """
    A pet id.
    """


class Pet(BaseModel):
    """
    A pet.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    id: PetId
    kind: Kind


class Cat(Pet):
    meows: bool


class Nothing(BaseModel):
    """
    Nothing at all.
    """
'''


PREAMBLE = '''from typing import TypeVar

_Root = TypeVar("_Root")


class _DeferredRootModel(RootModel[_Root]):
    """`RootModel`, deferred: the base pydantic makes for `class Pets(RootModel[list[Pet]])`
    is built at import, with every schema `Pet` references; `_DeferredRootModel[...]` is not."""

    model_config = ConfigDict(defer_build=True)
'''


def test_each_model_class_is_deferred_and_nothing_else_changes() -> None:
    source = _deferred(PETS)
    # Added to a config of the class's own, else first in its body (after a class docstring;
    # an attribute docstring stays after its attribute); not to the enum.
    assert 'model_config = ConfigDict(defer_build=True, \n        extra="forbid",\n' in source
    for start in ("class Cat(Pet):\n", '    Nothing at all.\n    """\n'):
        assert start + "    model_config = ConfigDict(defer_build=True)\n" in source
    # A root model derives from a deferred root model instead, defined after the imports.
    assert "class PetId(_DeferredRootModel[str]):\n    root:" in source
    assert "from pydantic import BaseModel, ConfigDict, Field, RootModel\n" + PREAMBLE in source
    undone = (
        source.replace(PREAMBLE, "")
        .replace("    model_config = ConfigDict(defer_build=True)\n", "")
        .replace("defer_build=True, ", "")
        .replace("_DeferredRootModel[", "RootModel[")
    )
    assert undone == PETS


def test_config_dict_is_imported_when_the_module_does_not_import_it() -> None:
    source = _deferred("from pydantic import BaseModel\n\n\nclass A(BaseModel):\n    x: int\n")
    assert source == (
        "from pydantic import BaseModel\nfrom pydantic import ConfigDict\n\n\n"
        "class A(BaseModel):\n    model_config = ConfigDict(defer_build=True)\n    x: int\n"
    )


def test_a_config_written_otherwise_or_that_says_already_is_left_alone() -> None:
    for body in (
        'model_config = {"extra": "forbid"}',
        "model_config = ConfigDict(defer_build=False)",
    ):
        source = (
            f"from pydantic import BaseModel, ConfigDict\n\n\nclass A(BaseModel):\n    {body}\n"
        )
        assert _deferred(source) == source


def test_importing_a_golden_models_module_builds_no_model(tmp_path: Path) -> None:
    # Built at import: what a trailing `Foo.model_rebuild()` builds, and the deferred root model
    # itself (its root is a type variable: built once, whatever the schemas).
    generic = {"_DeferredRootModel", "RootModel[~_Root]"}
    assert GOLDEN_MODELS
    for index, path in enumerate(GOLDEN_MODELS):
        source = path.read_text(encoding="utf-8")
        classes = _pydantic_classes(_import(source, tmp_path, f"golden_models_{index}"))
        assert set(_schema_classes(source)) & classes.keys(), path
        built = {name for name, model in classes.items() if model.__pydantic_complete__}
        assert built <= _rebuilt_at_import(source) | generic, path
        for name, model in classes.items():
            assert name in generic or model.model_config.get("defer_build") is True, name


@pytest.mark.parametrize("path", GOLDEN_MODELS, ids=lambda path: path.parent.name)
def test_a_deferred_model_builds_the_schema_an_import_time_build_gives(
    path: Path, tmp_path: Path
) -> None:
    deferred_source = path.read_text(encoding="utf-8")
    eager_source = _undeferred(deferred_source)
    deferred = _pydantic_classes(_import(deferred_source, tmp_path, "deferred_models"))
    eager = _pydantic_classes(_import(eager_source, tmp_path, "eager_models"))
    names = [name for name in _schema_classes(deferred_source) if name in eager]
    # Last first: a model is built before the models it references, the order least like import.
    # (Core schemas may differ in form, not in meaning: a definition shared or inlined, as the
    # order of the builds had it. The JSON schemas pydantic derives from them may not.)
    for name in reversed(names):
        _build(deferred[name])
        for mode in ("validation", "serialization"):
            expected = eager[name].model_json_schema(mode=mode)
            assert deferred[name].model_json_schema(mode=mode) == expected, (name, mode)
