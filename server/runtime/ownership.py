"""Which workspace owns the item a flat path names, from the spec's declarations.

A path such as ``/notes/{note_id}`` carries no ``workspace_id``, yet a note belongs to one
workspace (``x-gantry-owner: workspace`` on its schema), and the spec's visibility rule holds
for it as for ``/workspaces/{workspace_id}/…``: a non-member gets 404, a member whose role or
token scope is too low 403. Two declarations link the path to the workspace:

* ``x-gantry-resource: Note`` on the schema of the id (``NoteId``), or on the path parameter's
  own schema: a value of this type names a ``Note``;
* ``x-gantry-owner: workspace`` on ``Note``.

Storage registers, per resource, how to find the workspace of an id (an ``OwnerLookup``; a test
registers its own). ``Ownership`` reads the declarations once, at start-up, and refuses a spec
it could not enforce: an operation with a workspace role and no workspace to hold it in, or a
flat item path whose least role is not a workspace role. The guard asks it for the owner of the
item before the handler runs (``GantryGuard.authorize``). A resource whose lookup is not
registered yet (its operations scaffolded, its storage still to come) is refused closed: its
flat paths answer 501, as the scaffold's stubs do, and never reach a handler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from server.runtime.errors import NotFound, NotImplementedYet
from server.vocabulary import WORKSPACE_ROLES

# The path parameter that names a workspace: the tenancy scope of workspace roles.
WORKSPACE_PARAM = "workspace_id"
RESOURCE_KEY = "x-gantry-resource"
OWNER_KEY = "x-gantry-owner"
MIN_ROLE_KEY = "x-gantry-min-role"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# The workspace that owns the item with this id, or None when there is no such item.
OwnerLookup = Callable[[Session, str], str | None]


class OwnershipError(ValueError):
    """The spec gives a workspace role to an operation whose workspace cannot be found."""


@dataclass(frozen=True, slots=True)
class OwnedItem:
    """The path parameter of an operation on a flat path that names a workspace's item."""

    parameter: str  # as named in the spec
    resource: str  # the component schema it names
    lookup: OwnerLookup | None  # None: not registered (yet)

    def workspace_of(self, db: Session, path: Mapping[str, Any]) -> str:
        """The workspace that owns the item the request names; 404 for an unknown id."""
        if self.lookup is None:
            raise NotImplementedYet(f"No owner lookup is registered for {self.resource}.")
        value = path.get(self.parameter)
        owner = self.lookup(db, value) if isinstance(value, str) else None
        if owner is None:
            raise NotFound(f"{self.resource} not found.")
        return owner


class Ownership:
    """The operations on flat item paths of one document, by operationId."""

    def __init__(self, document: Mapping[str, Any], lookups: Mapping[str, OwnerLookup]) -> None:
        self._items: dict[str, OwnedItem] = {}
        problems: list[str] = []
        for operation_id, where, min_role, params in _operations(document):
            if WORKSPACE_PARAM in params:
                continue  # the path names its workspace
            owned = next(
                (
                    (name, resource)
                    for name, schema in params.items()
                    if (resource := _resource_of(document, schema))
                    and _owner_of(document, resource) == "workspace"
                ),
                None,
            )
            if owned is None:
                if min_role in WORKSPACE_ROLES:
                    problems.append(
                        f"{where} needs the {min_role} role but names no workspace: add a "
                        f"{{{WORKSPACE_PARAM}}} path parameter, or declare the resource its id "
                        f"names ({RESOURCE_KEY}) and that a workspace owns it ({OWNER_KEY})"
                    )
                continue
            name, resource = owned
            if min_role not in WORKSPACE_ROLES:
                problems.append(
                    f"{where} addresses a {resource}, which a workspace owns: its "
                    f"{MIN_ROLE_KEY} must be a workspace role, not {min_role!r}"
                )
            else:
                self._items[operation_id] = OwnedItem(name, resource, lookups.get(resource))
        if problems:
            raise OwnershipError("; ".join(problems))

    def item(self, operation_id: str) -> OwnedItem | None:
        """The workspace's item the operation addresses on a flat path, if it does."""
        return self._items.get(operation_id)

    def unregistered(self) -> set[str]:
        """Resources on flat paths that no owner lookup finds yet (their paths answer 501)."""
        return {item.resource for item in self._items.values() if item.lookup is None}


# ── reading the document ──────────────────────────────────────────────────────────────────────


def _operations(
    document: Mapping[str, Any],
) -> Iterator[tuple[str, str, str | None, dict[str, Any]]]:
    """(operationId, ``METHOD /path``, least role, path parameter name -> schema) of each
    operation, path-item parameters merged in (an operation's own win)."""
    for path, item in (document.get("paths") or {}).items():
        item = _resolve(document, item)
        shared = _path_params(document, item.get("parameters") or ())
        for method in _METHODS:
            definition = item.get(method)
            if not isinstance(definition, Mapping):
                continue
            params = {**shared, **_path_params(document, definition.get("parameters") or ())}
            role = definition.get(MIN_ROLE_KEY)
            yield (
                str(definition.get("operationId") or f"{method} {path}"),
                f"{method.upper()} {path}",
                str(role) if role is not None else None,
                params,
            )


def _path_params(document: Mapping[str, Any], parameters: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for raw in parameters:
        param = _resolve(document, raw)
        if isinstance(param, Mapping) and param.get("in") == "path":
            found[str(param.get("name"))] = param.get("schema") or {}
    return found


def _resource_of(document: Mapping[str, Any], schema: Any) -> str | None:
    """``x-gantry-resource`` of a parameter's schema, or of the schemas it refers to."""
    for _ in range(32):  # a reference chain, never a cycle
        if not isinstance(schema, Mapping):
            return None
        if schema.get(RESOURCE_KEY):
            return str(schema[RESOURCE_KEY])
        if not isinstance(schema.get("$ref"), str):
            return None
        schema = _resolve(document, {"$ref": schema["$ref"]})
    return None


def _owner_of(document: Mapping[str, Any], resource: str) -> str | None:
    schema = ((document.get("components") or {}).get("schemas") or {}).get(resource)
    if not isinstance(schema, Mapping):
        raise OwnershipError(f"{RESOURCE_KEY} names {resource!r}, which is not a schema")
    owner = schema.get(OWNER_KEY)
    return str(owner) if owner is not None else None


def _resolve(document: Mapping[str, Any], node: Any) -> Any:
    """``node`` with its ``$ref`` (a pointer into ``document``) followed."""
    for _ in range(32):
        if not (isinstance(node, Mapping) and isinstance(node.get("$ref"), str)):
            return node
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            return node  # outside the document: nothing declared there is read
        target: Any = document
        for part in ref[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            target = target.get(key) if isinstance(target, Mapping) else None
        node = target
    return node
