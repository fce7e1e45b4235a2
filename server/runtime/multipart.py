"""A ``multipart/form-data`` body read into its parts, each with its own headers.

Werkzeug's ``MultiPartParser`` keeps the headers of the parts it stores as files only; a text
part's ``Content-Type`` is lost, and with it what OpenAPI's ``encoding`` is about. So the parts
are read here with Werkzeug's sans-IO ``MultipartDecoder``, under the limits Werkzeug's own
form parsing applies: ``MAX_CONTENT_LENGTH`` (through ``request.stream``), ``MAX_FORM_PARTS``,
and ``MAX_FORM_MEMORY_SIZE`` for each part held in memory (413). A part the caller chooses to
stream goes to a spooled file, as Werkzeug stores uploads. Whatever the bytes, the answer is a
list of parts or a 400/413 (the decoder's only complaints are ``ValueError`` and the 413).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from werkzeug.datastructures import FileStorage, Headers
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import default_stream_factory
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData
from werkzeug.wrappers import Request as WerkzeugRequest

from server.runtime.body_bytes import content_length
from server.runtime.errors import BadRequest, FieldError

_CHUNK = 64 * 1024  # what Werkzeug's form parser reads at a time
_MAX_BOUNDARY = 70  # RFC 2046


@dataclass(frozen=True, slots=True)
class Part:
    """One part of the body: its bytes, or the file they were streamed to."""

    name: str
    filename: str | None
    content_type: str  # the part's Content-Type header as sent; "" when it has none
    data: bytes  # held in memory (b"" for a streamed part)
    file: FileStorage | None  # streamed

    @property
    def media_type(self) -> str:
        """The Content-Type's essence, lower case; "" when the part has none."""
        return self.content_type.split(";", 1)[0].strip().lower()


# Whether a part (by its name and filename) is streamed to a file rather than held in memory.
Streamed = Callable[[str, "str | None"], bool]


def boundary_of(content_type: str) -> bytes:
    """The ``boundary`` parameter of a multipart Content-Type, or a 400 problem."""
    boundary = parse_options_header(content_type)[1].get("boundary", "")
    if not boundary or len(boundary) > _MAX_BOUNDARY or not boundary.isascii():
        raise BadRequest(
            "The multipart body has no usable boundary.",
            errors=[FieldError("body", "the Content-Type needs a boundary parameter (RFC 2046)")],
        )
    return boundary.encode("ascii")


def read_parts(request: WerkzeugRequest, boundary: bytes, streamed: Streamed) -> list[Part]:
    """Every part of the body, in order."""
    cached = getattr(request, "_cached_data", None)  # the body was read already
    stream: IO[bytes] = io.BytesIO(cached) if cached is not None else request.stream
    memory_limit = request.max_form_memory_size
    reader = _Reader(
        boundary,
        memory_limit=memory_limit,
        max_parts=request.max_form_parts,
        total=content_length(request),
        streamed=streamed,
    )
    # The decoder refuses a chunk that would fill its buffer past the memory limit, whatever
    # the parts are: read in smaller chunks, so the limit applies to the parts held in memory.
    size = _CHUNK if memory_limit is None else max(1, min(_CHUNK, memory_limit // 2))
    try:
        for chunk in _chunks(stream, size):
            reader.feed(chunk)
    except ValueError as exc:  # how the decoder says the bytes are not multipart
        raise BadRequest(
            "The multipart body is malformed.", errors=[FieldError("body", _reason(exc))]
        ) from None
    return reader.parts


def _chunks(stream: IO[bytes], size: int) -> Iterator[bytes | None]:
    """The body in chunks, then ``None`` (the decoder's end of input)."""
    while chunk := stream.read(size):
        yield chunk
    yield None


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "a part's headers are not UTF-8"
    message = str(exc)
    if "Content-Disposition" in message:
        return "a part has no Content-Disposition header"
    return "not a multipart body with this boundary, or cut short"


class _Reader:
    """Turns the decoder's events into parts."""

    def __init__(
        self,
        boundary: bytes,
        *,
        memory_limit: int | None,
        max_parts: int | None,
        total: int | None,
        streamed: Streamed,
    ) -> None:
        self.decoder = MultipartDecoder(
            boundary, max_form_memory_size=memory_limit, max_parts=max_parts
        )
        self.memory_limit = memory_limit
        self.total = total
        self.streamed = streamed
        self.parts: list[Part] = []
        self._current: Field | File | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._file: IO[bytes] | None = None

    def feed(self, chunk: bytes | None) -> None:
        self.decoder.receive_data(chunk)
        event = self.decoder.next_event()
        while not isinstance(event, (Epilogue, NeedData)):
            if isinstance(event, (Field, File)):
                self._start(event)
            elif isinstance(event, Data):
                self._data(event.data)
                if not event.more_data:
                    self._finish()
            event = self.decoder.next_event()

    def _start(self, event: Field | File) -> None:
        if not isinstance(event.name, str):  # no name in its Content-Disposition
            raise BadRequest(
                "A form part has no readable name.", errors=[FieldError("body", "unnamed part")]
            )
        self._current = event
        self._chunks, self._size, self._file = [], 0, None
        filename = event.filename if isinstance(event, File) else None
        if self.streamed(event.name, filename):
            self._file = default_stream_factory(
                total_content_length=self.total,
                content_type=event.headers.get("content-type"),
                filename=filename,
            )

    def _data(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)
            return
        self._size += len(data)
        if self.memory_limit is not None and self._size > self.memory_limit:
            raise RequestEntityTooLarge()
        self._chunks.append(data)

    def _finish(self) -> None:
        event = self._current
        assert event is not None  # data comes after a part's headers
        headers: Headers = event.headers
        filename = event.filename if isinstance(event, File) else None
        stored = None
        if self._file is not None:
            self._file.seek(0)
            stored = FileStorage(self._file, filename, event.name, headers=headers)
        self.parts.append(
            Part(
                name=event.name,
                filename=filename,
                content_type=headers.get("content-type", ""),
                data=b"".join(self._chunks),
                file=stored,
            )
        )
        self._current, self._chunks, self._file = None, [], None
