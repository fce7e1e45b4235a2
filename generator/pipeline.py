"""The generation pipeline: load → check → prepare → models ‖ records → assemble.

Reads like a table of contents; each step lives in its own module. `command` decides whether it
needs to run at all (an unchanged spec is answered from the cache) and writes the result.

Within a run, nothing is worked out twice. The spec is a shared part and one unit per path item
(`units`); what depends on a unit alone (its checks, its rendered records) or on the schemas
alone (the effective schemas, the file skeletons, the models) is kept in the `Memo` under a key
of exactly what it depends on, so an edit to one operation re-checks and re-renders that path
item only. The models, the slowest step, run on another core (`models.Worker`) while the rest is
checked and rendered; class names go into the records last (`render.put_model_classes`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

from . import analysis, bundle, jsonpointer, loader, render
from .build_ir import (
    build,
    build_operations,
    build_shared,
    responses_with_model_classes,
    with_model_classes,
)
from .cache import Cache
from .diagnostics import Diagnostic, GenerationFailed, Located, Severity
from .formatting import format_sources
from .ir import Api, Parameter, Response, SharedRef, Source
from .memo import Memo
from .models import Models, ModelsJob, Worker
from .output import Generated
from .prepare import Prepared, prepare
from .render import Records
from .resolve import Resolver
from .schemas import is_openapi_30, json_text, openapi_document, schemas_document
from .units import Unit, Units, split

_SCHEMAS = "/components/schemas"


def produce(
    spec: Path,
    shown: str,
    *,
    strict: bool,
    cache: Cache,
    raw: bytes | None = None,
    worker: Worker | None = None,
) -> Generated:
    """Generate every file in memory; raise `GenerationFailed` with all problems on failure.

    `shown` is the spec path as the file headers name it; `raw` its bytes, if already read;
    `worker` a `models.Worker` to generate the models on another core (the caller stops it).
    """
    memo = Memo(cache, shown)
    pieces = dict(memo.previous["pieces"])
    document = loader.loads(raw, spec, pieces) if raw is not None else _load(spec, pieces)
    memo.replace("pieces", pieces)
    document = bundle.bundle(document)  # other files' content is then in `data` only
    facts = dict(memo.previous["facts"])
    units = split(document.data, digests=document.digests, facts=facts, text=document.text)
    memo.replace(
        "facts",
        {u.digest: facts[u.digest] for u in units.units}
        | {units.shared_digest: facts[units.shared_digest]},
    )
    resolver = Resolver(document.data)
    run = _Run(memo, units, document, resolver, Source(shown, document.sha256))
    try:
        early = run.prepared(early=True)
        job = run.models_job(early, cache, worker) if early is not None else None
        problems = run.check()
        _stop_on_failures(problems, strict)
        prepared = early if early is not None else run.prepared(early=False)
        assert prepared is not None
        job = job or run.models_job(prepared, cache, worker)
        env = render.environment(cache.folder("jinja"))
        records, skeletons = run.records_and_skeletons(prepared, env)
        json_files = run.json_files(prepared)
        models = _models(document, job)
    finally:
        if worker is not None:
            worker.stop()  # idle (models came from the cache) or done
    problems += [_locate(document, _model_warning(document.data, m)) for m in models.warnings]
    _stop_on_failures(problems, strict)
    skeletons = {
        name: render.put_model_classes(text, models.class_names) for name, text in skeletons.items()
    }
    skeletons["models.py"] = run.models_file(models, env)
    texts = render.assemble(skeletons, run.finish(records, models), run.source)
    memo.save()
    files = {**{name: text.encode() for name, text in texts.items()}, **json_files}
    warnings = tuple(sorted(p for p in set(problems) if p.severity == "warning"))
    return Generated(files, warnings, document.inputs)


def _load(spec: Path, pieces: loader.PieceMemo) -> loader.Document:
    try:
        raw = spec.read_bytes()
    except OSError as exc:
        message = f"cannot read spec: {exc.strerror}"
        raise GenerationFailed([Located(1, 1, "error", message)]) from exc
    return loader.loads(raw, spec, pieces)


class _Run:
    """One generation: each step asks the memo first and tells it what it made."""

    def __init__(
        self,
        memo: Memo,
        units: Units,
        document: loader.Document,
        resolver: Resolver,
        source: Source,
    ) -> None:
        self.memo = memo
        self.units = units
        self.document = document
        self.resolver = resolver
        self.source = source
        self.openapi = str(document.data.get("openapi", ""))
        self.prepared_key = units.digest(
            "prepared", *(f"{unit.path}\0{unit.bodies}" for unit in units.units)
        )
        self.whole = False  # a `$ref` into `#/paths`: a unit's results depend on another's
        self.fresh_records: dict[str, int] = {}  # memo key -> index, of records made this run

    # -- checks -----------------------------------------------------------------------------

    def check(self) -> list[Located]:
        """Every problem of the document, placed in the file: reading, `$ref`s, our
        conventions, the OpenAPI schema."""
        units = self.units
        shared = self._cached("shared", units.digest("shared"), self._analyse_shared)
        keys = {u.path: units.digest("analysis", u.digest, str(units.profile)) for u in units.units}
        found = {u.path: self.memo.get("units", keys[u.path]) for u in units.units}
        missing = [u for u in units.units if found[u.path] is None]
        if missing:
            fresh = self._analyse(missing)
            for unit in missing:
                found[unit.path] = fresh[unit.path]
                self.memo.put("units", keys[unit.path], fresh[unit.path])
        self.whole = shared["references_paths"] or any(
            part["references_paths"] for part in found.values()
        )
        if self.whole:  # nothing per unit can be trusted: work on the whole document
            shared = analysis.analyse_shared(units, self.resolver)
            found = analysis.analyse_units(units, units.units, self.document.data, self.resolver)
        per_unit = [found[unit.path] for unit in units.units]
        diagnostics = analysis.diagnostics(units, shared, per_unit)
        return [*self.document.problems, *(_locate(self.document, d) for d in diagnostics)]

    def _analyse_shared(self) -> dict[str, Any]:
        return analysis.analyse_shared(self.units, self.resolver)

    def _analyse(self, chosen: list[Unit]) -> dict[str, dict[str, Any]]:
        part = self.units.document(chosen)
        return analysis.analyse_units(self.units, chosen, part, Resolver(part))

    # -- effective schemas and models -------------------------------------------------------

    def prepared(self, *, early: bool) -> Prepared | None:
        """The effective schemas; early (before the checks), None when the document is too
        broken for them (the checks will say why)."""
        stored = self.memo.get("prepared", self.prepared_key)
        if stored is not None:
            return Prepared.from_plain(stored)
        try:
            prepared = prepare(self.document.data, self.resolver)
        except Exception as exc:
            if early:
                return None
            pointer = Diagnostic.error(_SCHEMAS, str(exc))
            raise GenerationFailed([_locate(self.document, pointer)]) from exc
        self.memo.put("prepared", self.prepared_key, prepared.to_plain())
        return prepared

    def models_job(self, prepared: Prepared, cache: Cache, worker: Worker | None) -> ModelsJob:
        """The models of the effective schemas, started (on the worker, if there is one)."""
        return ModelsJob(
            prepared.schemas, self.openapi, cache, aliases=prepared.aliases, worker=worker
        )

    def models_file(self, models: Models, env: jinja2.Environment) -> str:
        """`models.py` (with stand-ins for the spec's path and hash), formatted."""

        def make() -> str:
            text = render.render_models(models.source, env)
            return format_sources({"models.py": text}, sort_imports=("models.py",))["models.py"]

        return str(self._cached("skeletons", self.units.digest("models", models.source), make))

    # -- rendering --------------------------------------------------------------------------

    def records_and_skeletons(
        self, prepared: Prepared, env: jinja2.Environment
    ) -> tuple[list[Records], dict[str, str]]:
        """The formatted records of every path item, and the formatted skeletons of the
        operation table, route table and package (models.py comes with the models).

        Records from the memo already name their model classes (the classes follow from the
        effective schemas, which are part of the key); new ones hold stand-ins until
        `finish` puts the classes in and keeps them.
        """
        keys = [self.units.digest("records", u.digest, self.prepared_key) for u in self.units.units]
        stored = [None if self.whole else self.memo.get("records", key) for key in keys]
        missing = [
            unit for unit, kept in zip(self.units.units, stored, strict=True) if kept is None
        ]
        fresh = self._render_records(missing, prepared, env)
        records: list[Records] = []
        for unit, key, kept in zip(self.units.units, keys, stored, strict=True):
            if kept is None:
                self.fresh_records[key] = len(records)
                kept = fresh[unit.path]
            records.append(_records(kept))
        has_operations = any(r.operations for r in records)
        has_callbacks = any(r.callbacks for r in records)
        refs = sorted({ref for r in records for ref in r.shared})
        skeleton_key = self.units.digest(
            "skeletons",
            self.prepared_key,
            str(has_operations),
            str(has_callbacks),
            *("\0".join((ref.kind, ref.component, ref.status)) for ref in refs),
        )
        skeletons = None if self.whole else self.memo.get("skeletons", skeleton_key)
        if skeletons is None:
            api = self._shared_api(prepared)
            refs += render.shared_refs((), api.webhooks)
            texts = render.render_skeletons(
                api,
                env,
                has_operations=has_operations,
                has_callbacks=has_callbacks,
                shared=self._shared_records(prepared, refs),
            )
            skeletons = format_sources(texts)
            self.memo.put("skeletons", skeleton_key, skeletons)
        return records, dict(skeletons)

    def finish(self, records: list[Records], models: Models) -> list[Records]:
        """The new records with their model classes put in (and kept in the memo)."""
        finished = list(records)
        for key, index in self.fresh_records.items():
            made = records[index]
            done = Records(
                operations=render.put_model_classes(made.operations, models.class_names),
                callbacks=render.put_model_classes(made.callbacks, models.class_names),
                shared=made.shared,
            )
            finished[index] = done
            self.memo.put("records", key, _plain(done))
        return finished

    def _render_records(
        self, missing: list[Unit], prepared: Prepared, env: jinja2.Environment
    ) -> dict[str, PlainRecords]:
        if not missing:
            return {}
        part = self.document.data if self.whole else self.units.document(missing)
        resolver = self.resolver if self.whole else Resolver(part)
        groups = build_operations(part, resolver, prepared)
        stand_ins = render.ModelStandIns()
        rendered = []
        for unit in missing:
            operations, callbacks = groups.get(unit.path, ([], []))
            api = with_model_classes(
                Api(self.source, "", "", tuple(operations), (), (), tuple(callbacks)), stand_ins
            )
            rendered.append(render.render_records(api.operations, api.callbacks, env))
        formatted = render.format_records(rendered, format_sources)
        return {unit.path: _plain(r) for unit, r in zip(missing, formatted, strict=True)}

    def _shared_records(
        self, prepared: Prepared, refs: list[SharedRef]
    ) -> tuple[tuple[Parameter, ...], tuple[Response, ...]]:
        """The records that come from components, as `refs` name them (their models as
        stand-ins)."""
        part = self.document.data if self.whole else self.units.document([])
        resolver = self.resolver if self.whole else Resolver(part)
        parameters, responses = build_shared(part, resolver, prepared, refs)
        stand_ins = render.ModelStandIns()
        return parameters, responses_with_model_classes(responses, stand_ins)

    def _shared_api(self, prepared: Prepared) -> Api:
        """The parts of the API outside the path items: title, base path, security schemes,
        webhooks (their models as stand-ins)."""
        part = self.units.document([])
        api = build(part, Resolver(part), self.source, None, prepared)
        return with_model_classes(api, render.ModelStandIns())

    def json_files(self, prepared: Prepared) -> dict[str, bytes]:
        """`schemas.json` and `openapi.json`."""

        def schemas_json() -> bytes:
            document = schemas_document(
                prepared.schemas, openapi_30=is_openapi_30(self.openapi), unions=prepared.unions
            )
            notice = _notice(render.SOURCE_STAND_IN)
            return json_text({**document, "x-generated": notice}, sort_keys=True)

        key = self.units.digest("schemas.json", self.prepared_key)
        schemas = _with_notice(self._cached("prepared", key, schemas_json), self.source)
        openapi = openapi_document(self.document.data, generated=_notice(self.source))
        return {"schemas.json": schemas, "openapi.json": openapi}

    def _cached(self, section: str, key: str, make: Any) -> Any:
        value = self.memo.get(section, key)
        if value is None:
            value = make()
            self.memo.put(section, key, value)
        return value


# A group's records as the memo keeps them: operations, callbacks, and the shared records they
# name as (kind, component, status).
PlainRecords = tuple[str, str, tuple[tuple[str, str, str], ...]]


def _plain(records: Records) -> PlainRecords:
    shared = tuple((ref.kind, ref.component, ref.status) for ref in records.shared)
    return records.operations, records.callbacks, shared


def _records(plain: PlainRecords) -> Records:
    operations, callbacks, shared = plain
    return Records(operations, callbacks, tuple(SharedRef(*ref) for ref in shared))


def _notice(source: Source) -> dict[str, str]:
    """The `x-generated` member of the JSON files."""
    return {"notice": render.header(source), "sha256": source.sha256, "spec": source.path}


def _with_notice(text: bytes, source: Source) -> bytes:
    """`schemas.json` made with the stand-in notice, with the real one instead. Its keys are
    sorted, so the notice is the last `x-generated` member."""
    at = text.rfind(b'"x-generated"')
    head, tail = text[:at], text[at:]
    stand_in = _notice(render.SOURCE_STAND_IN)
    for name, value in _notice(source).items():
        tail = tail.replace(json_text(stand_in[name])[:-1], json_text(value)[:-1], 1)
    return head + tail


def _locate(document: loader.Document, diagnostic: Diagnostic) -> Located:
    return document.source_map.locate_diagnostic(diagnostic)


def _stop_on_failures(problems: list[Located], strict: bool) -> None:
    if any(p.severity == Severity.ERROR.value or strict for p in problems):
        raise GenerationFailed(sorted(set(problems)))


def _models(document: loader.Document, job: ModelsJob) -> Models:
    try:
        return job.result()
    except Exception as exc:  # datamodel-code-generator has limits of its own
        message = f"datamodel-code-generator failed: {type(exc).__name__}: {exc}"
        raise GenerationFailed([_locate(document, Diagnostic.error(_SCHEMAS, message))]) from exc


def _model_warning(data: dict[str, Any], message: str) -> Diagnostic:
    """A datamodel-code-generator warning, placed at the schema it names when it names one."""
    components = data.get("components")
    schemas = components.get("schemas") if isinstance(components, dict) else None
    names = schemas if isinstance(schemas, dict) else {}
    named = [word for word in re.findall(r"[\w.-]+", message) if word in names]
    pointer = jsonpointer.child(_SCHEMAS, named[0]) if named else _SCHEMAS
    return Diagnostic.warning(pointer, f"datamodel-code-generator: {message}")
