"""What the last run of a spec worked out, kept for the next run of the same spec.

A spec author changes one operation at a time. The memo holds the results of the steps that
can be done per path item (parsed YAML pieces, checks, rendered records) and of the steps that
depend on the schemas only (the effective schemas, the rendered skeletons), each under a key
made of exactly what it depends on; a run looks up what it needs and stores what it made.

It is one file per spec path in the cache (`marshal`, like jinja2's bytecode cache: fast, and
only ever read by the Python that wrote it, which is part of the file's key). A spec seen for
the first time starts from the most recent memo of any spec (a copy or a renamed spec shares
most of its content; every entry is keyed by content, so a foreign entry is merely unused). A new
file holds only what the last run used, so it does not grow with the edits.
"""

from __future__ import annotations

import marshal
import sys
from typing import Any

from .cache import Cache, code_digest, installed_digest, key

_KIND = "memo"
SECTIONS = ("pieces", "facts", "shared", "units", "prepared", "records", "skeletons")


class Memo:
    """Entries by section and key: the last run's, and this run's."""

    def __init__(self, cache: Cache, spec: str) -> None:
        self.cache = cache
        # An entry's meaning changes with the generator's code: another code, another family.
        self.family = key(_KIND, sys.version, code_digest(), installed_digest())[:16]
        self.name = f"{self.family}-{key(_KIND, spec)[:48]}"
        self.previous = self._read()
        self.current: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        self.changed = False

    def _read(self) -> dict[str, dict[str, Any]]:
        raw = self.cache.get_bytes(_KIND, self.name)
        if raw is None:
            newest = self.cache.newest(_KIND, prefix=self.family + "-")
            raw = self.cache.get_bytes(_KIND, newest) if newest is not None else None
        try:
            value = marshal.loads(raw) if raw is not None else None
        except (EOFError, ValueError, TypeError):
            value = None
        if not isinstance(value, dict):
            return {section: {} for section in SECTIONS}
        return {section: dict(value.get(section) or {}) for section in SECTIONS}

    def get(self, section: str, entry: str) -> Any:
        """An entry of this run or the last (then kept for the next), or None."""
        if entry in self.current[section]:
            return self.current[section][entry]
        value = self.previous[section].get(entry)
        if value is not None:
            self.current[section][entry] = value
        return value

    def put(self, section: str, entry: str, value: Any) -> None:
        """Keep an entry for the next run."""
        self.current[section][entry] = value
        self.changed = True

    def replace(self, section: str, entries: dict[str, Any]) -> None:
        """Keep exactly `entries` in a section."""
        self.changed = self.changed or entries.keys() != self.previous[section].keys()
        self.current[section] = entries

    def save(self) -> None:
        """Write the entries this run used, when they differ from the last run's."""
        if self.changed or any(
            self.current[section].keys() != self.previous[section].keys() for section in SECTIONS
        ):
            self.cache.put_bytes(_KIND, self.name, marshal.dumps(self.current))
