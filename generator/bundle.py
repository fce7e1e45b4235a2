"""A document split over several files, made one: every external `$ref` brought inside.

Relative references (`schemas/pet.yaml`, `common.json#/Error`, nested to any depth, YAML or
JSON) are followed from the file that holds them; remote ones (`https://…`) are refused. What
they name goes where bundlers such as Redocly's put it, so names stay stable across edits:

- a component-shaped target (a schema, parameter, response, request body, header, example,
  link, callback or security scheme, as told by where it is referenced from) is hoisted into
  `components/<kind>` under the last token of its pointer, or the file's stem (`Pet`, `Pet2`
  when the name is taken), and every reference to it points there; a root component that is
  only a `$ref` to a file takes the file's content under its own name;
- anything else (a path item, a webhook) is put in place of the reference.

Every node of the result remembers the file and pointer it came from (`origins`), so a
diagnostic is placed at the file, line and column of the defect (`BundleSourceMap`).
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from . import jsonpointer, loader
from .command import display_path
from .diagnostics import Diagnostic, GenerationFailed, Located
from .resolve import is_ref, iter_refs

_COMPONENT_KINDS = frozenset(
    {
        "callbacks",
        "examples",
        "headers",
        "links",
        "parameters",
        "requestBodies",
        "responses",
        "schemas",
        "securitySchemes",
    }
)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_Target = tuple[Path, str]  # (file, JSON pointer in it)


def is_external(ref: str) -> bool:
    """A reference to another file (or to anything but this document)."""
    return not ref.startswith("#")


def bundle(document: loader.Document) -> loader.Document:
    """`document` with every external reference brought inside (itself when it has none).
    A reference that cannot be followed stays as it is, and its problem is one of the
    document's."""
    if not any(is_external(ref) for _, ref in iter_refs(document.data)):
        return document
    bundler = _Bundler(document)
    data = bundler.run()
    files = bundler.files
    digest = hashlib.sha256(document.sha256.encode())
    for path in sorted(files):
        digest.update(f"\0{bundler.shown(path)}\0{files[path].sha256}".encode())
    problems = [*document.problems, *bundler.problems]
    for path, external in files.items():
        problems += [_in_file(p, bundler.shown(path)) for p in external.problems]
    return loader.Document(
        document.path,
        digest.hexdigest(),
        "\n".join([document.text, *(external.text for external in files.values())]),
        data,
        tuple(dict.fromkeys(problems)),
        BundleSourceMap(document, bundler),
        inputs=tuple(sorted((str(path), files[path].sha256) for path in files)),
    )


class _Bundler:
    def __init__(self, root: loader.Document) -> None:
        self.root = root
        self.root_path = root.path.resolve()
        self.files: dict[Path, loader.Document] = {}
        self.problems: list[Located] = []
        self.origins: dict[str, _Target] = {}
        # Where what was put in place of a reference was named: a diagnostic about that node
        # as a whole (a path item's template) belongs there.
        self.named_at: dict[str, _Target] = {}
        self.targets: dict[_Target, str] = {}  # hoisted target -> its local reference
        self.hoisted: dict[str, dict[str, Any]] = {}
        self.taken: dict[str, set[str]] = {}
        self.inlining: list[_Target] = []

    def run(self) -> dict[str, Any]:
        data = self.root.data
        components = data.get("components")
        components = components if isinstance(components, dict) else {}
        for kind in _COMPONENT_KINDS:
            names = components.get(kind)
            self.taken[kind] = set(names) if isinstance(names, dict) else set()
        # A root component that is only a reference to a file is that file's content.
        for kind, names in sorted(components.items()):
            if kind not in _COMPONENT_KINDS or not isinstance(names, dict):
                continue
            for name, value in names.items():
                if is_ref(value) and len(value) == 1 and is_external(value["$ref"]):
                    target = self.target(value["$ref"], self.root_path, "")
                    if target is not None:
                        pointer = jsonpointer.join(["components", kind, name])
                        self.targets.setdefault(target, "#" + pointer)
        bundled = self.rewrite(data, self.root_path, "", "")
        if self.hoisted:
            bundled = dict(bundled)
            merged = dict(bundled.get("components") or {})
            for kind in sorted(self.hoisted):
                merged[kind] = {**(merged.get(kind) or {}), **self.hoisted[kind]}
            bundled["components"] = merged
        return bundled  # type: ignore[no-any-return]

    def shown(self, path: Path) -> str:
        """A file as diagnostics name it: relative to the working folder when possible."""
        return display_path(path)

    # -- following references ---------------------------------------------------------------

    def rewrite(self, value: Any, file: Path, out: str, at: str) -> Any:
        """`value`, found at pointer `at` of `file` and going to pointer `out` of the bundle,
        with the references that leave the root document made local."""
        found = [
            (jsonpointer.parent(member), ref)
            for member, ref in iter_refs(value)
            if file != self.root_path or is_external(ref)
        ]
        if not found:
            return value
        value = copy.deepcopy(value)
        for holder_pointer, ref in found:
            holder = _get(value, holder_pointer)
            replacement = self.replace(ref, file, out + holder_pointer, at + holder_pointer)
            if replacement is None:
                continue
            if is_ref(replacement):
                holder["$ref"] = replacement["$ref"]
            else:  # put in place: the reference's siblings (a description…) win
                siblings = {k: v for k, v in holder.items() if k != "$ref"}
                merged = (
                    {**replacement, **siblings} if isinstance(replacement, dict) else replacement
                )
                if holder_pointer:
                    _set(value, holder_pointer, merged)
                else:
                    value = merged
        return value

    def replace(self, ref: str, file: Path, out: str, at: str) -> Any:
        """What stands in the bundle for the reference `ref` of `file` (at `at`, going to
        `out`): a local reference, or the content itself; None when it cannot be followed."""
        target = self.target(ref, file, at)
        if target is None:
            return None
        target_file, pointer = target
        if target_file == self.root_path:
            return {"$ref": "#" + pointer}
        local = self.targets.get(target)
        if local is not None and local != "#" + out:
            return {"$ref": local}
        content = self.value(target, ref, file, at)
        if content is None:
            return None
        kind = _kind(jsonpointer.split(out))
        if local is None and kind is not None:
            name = self.name(kind, target)
            local = "#" + jsonpointer.join(["components", kind, name])
            self.targets[target] = local
            place = local[1:]
            self.hoisted.setdefault(kind, {})[name] = {}
            self.hoisted[kind][name] = self.rewrite(content, target_file, place, pointer)
            self.origins[place] = target
            return {"$ref": local}
        if target in self.inlining:
            self.problem(file, at, f"$ref {ref!r} is circular")
            return None
        self.inlining.append(target)
        try:
            inlined = self.rewrite(content, target_file, out, pointer)
        finally:
            self.inlining.pop()
        self.origins[out] = target
        self.named_at[out] = (file, at)
        return inlined

    def target(self, ref: str, file: Path, at: str) -> _Target | None:
        """The file and pointer `ref` (written in `file`) names; None (and a problem) when it
        is remote or not a JSON pointer."""
        location, _, fragment = ref.partition("#")
        parts = urlsplit(location)
        if parts.scheme or parts.netloc:
            message = (
                f"remote $ref {ref!r} is not supported: only files beside the spec "
                "(relative paths) are followed"
            )
            self.problem(file, at, message)
            return None
        pointer = unquote(fragment)
        if pointer and not pointer.startswith("/"):
            self.problem(file, at, f"$ref {ref!r} is not a JSON pointer")
            return None
        target_file = (file.parent / unquote(parts.path)).resolve() if parts.path else file
        return target_file, pointer

    def value(self, target: _Target, ref: str, file: Path, at: str) -> Any:
        """The value `target` names (reading its file first); None and a problem when it
        cannot be read or has no such node."""
        path, pointer = target
        document = self.load(path, ref, file, at)
        if document is None:
            return None
        try:
            return jsonpointer.resolve(document.data, pointer)
        except LookupError:
            self.problem(file, at, f"$ref {ref!r} does not resolve: no {pointer!r} in it")
            return None

    def load(self, path: Path, ref: str, file: Path, at: str) -> loader.Document | None:
        if path in self.files:
            return self.files[path]
        if not path.is_file():
            self.problem(file, at, f"$ref {ref!r} does not resolve: no file {self.shown(path)}")
            return None
        try:
            document = loader.load(path)
        except GenerationFailed as failure:
            self.problems += [_in_file(p, self.shown(path)) for p in failure.diagnostics]
            return None
        self.files[path] = document
        return document

    def name(self, kind: str, target: _Target) -> str:
        """A free name in `components/<kind>` for `target`: its pointer's last token, or its
        file's stem."""
        path, pointer = target
        tokens = jsonpointer.split(pointer)
        base = _UNSAFE_NAME.sub("_", tokens[-1] if tokens else path.name.split(".")[0])
        base = base.strip("_") or "Ref"
        taken = self.taken.setdefault(kind, set())
        name, number = base, 1
        while name in taken:
            number += 1
            name = f"{base}{number}"
        taken.add(name)
        return name

    def problem(self, file: Path, at: str, message: str) -> None:
        pointer = jsonpointer.child(at, "$ref")
        if file == self.root_path:
            located = self.root.source_map.locate_diagnostic(Diagnostic.error(pointer, message))
        else:
            line, column = self.files[file].source_map.locate(pointer)
            located = Located(line, column, "error", message, self.shown(file))
        self.problems.append(located)


class BundleSourceMap(loader.SourceMap):
    """Places a diagnostic about the bundle in the file its node came from."""

    def __init__(self, root: loader.Document, bundler: _Bundler) -> None:
        super().__init__({})
        self._root = root
        self._bundler = bundler

    def locate(self, pointer: str) -> tuple[int, int]:
        """The position of `pointer` in the root document (or of its nearest ancestor)."""
        return self._root.source_map.locate(pointer)

    def locate_diagnostic(self, diagnostic: Diagnostic) -> Located:
        """Place `diagnostic` at the line and column of its node, in the file that has it."""
        pointer, rest = diagnostic.pointer, ""
        origins = self._bundler.origins
        while pointer and pointer not in origins:
            rest = pointer[len(jsonpointer.parent(pointer)) :] + rest
            pointer = jsonpointer.parent(pointer)
        if pointer not in origins:
            return self._root.source_map.locate_diagnostic(diagnostic)
        path, base = origins[pointer]
        if not rest and pointer in self._bundler.named_at:
            path, base = self._bundler.named_at[pointer]
        if path == self._bundler.root_path:
            return self._root.source_map.locate_diagnostic(
                Diagnostic(diagnostic.severity, base, diagnostic.message)
            )
        line, column = self._bundler.files[path].source_map.locate(base + rest)
        severity = diagnostic.severity.value
        return Located(line, column, severity, diagnostic.message, self._bundler.shown(path))


def _kind(tokens: list[str]) -> str | None:
    """The component kind of what is referenced from `tokens` (a pointer of the bundle), or
    None for what has no place in `components` (path items)."""
    if "schema" in tokens or tokens[:2] == ["components", "schemas"]:
        return "schemas"
    if len(tokens) < 2:
        return None
    parent, last = tokens[-2], tokens[-1]
    if last == "requestBody" or parent == "requestBodies":
        return "requestBodies"
    if parent in _COMPONENT_KINDS:
        return parent
    return None


def _get(value: Any, pointer: str) -> Any:
    for token in jsonpointer.split(pointer):
        value = value[int(token)] if isinstance(value, list) else value[token]
    return value


def _set(value: Any, pointer: str, new: Any) -> None:
    holder = _get(value, jsonpointer.parent(pointer))
    token = jsonpointer.split(pointer)[-1]
    if isinstance(holder, list):
        holder[int(token)] = new
    else:
        holder[token] = new


def _in_file(problem: Located, shown: str) -> Located:
    if problem.file:
        return problem
    return Located(problem.line, problem.column, problem.severity, problem.message, shown)
