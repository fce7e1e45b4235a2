"""The media type of a file, from its first bytes (a small, fixed table of signatures).

What a client says a file is (a part's ``Content-Type``) is a claim; the bytes decide where they
can. Recognised: the common image formats, PDF, the archive formats, JSON, HTML, SVG and XML,
and text (UTF-8 without control characters). Anything else keeps the claimed type if it is a
well-formed one, else ``application/octet-stream``.
"""

from __future__ import annotations

import json
import re

__all__ = ["OCTET_STREAM", "sniff"]

OCTET_STREAM = "application/octet-stream"

# (prefix at offset 0, media type), longest and most specific first.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"BM", "image/bmp"),
    (b"\x7fELF", "application/x-executable"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
)
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def sniff(head: bytes, claimed: str = "") -> str:
    """The media type of a file starting with ``head`` (its first few hundred bytes);
    ``claimed`` is what the sender said it is."""
    for prefix, media_type in _SIGNATURES:
        if head.startswith(prefix):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    text = _as_text(head)
    if text is not None:
        return _text_type(text, head)
    essence = claimed.split(";", 1)[0].strip().lower()
    return essence if _MEDIA_TYPE.match(essence) else OCTET_STREAM


def _as_text(head: bytes) -> str | None:
    """``head`` as text if it is UTF-8 (a sequence cut at the end allowed) with no control
    characters besides tabs and line breaks."""
    if not head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return None
        text = head[: exc.start].decode("utf-8")
    return None if _CONTROL.search(text) else text


def _text_type(text: str, head: bytes) -> str:
    stripped = text.lstrip("\ufeff \t\r\n").lower()
    if stripped.startswith(("<!doctype html", "<html")):
        return "text/html"
    if stripped.startswith("<svg") or (stripped.startswith("<?xml") and "<svg" in stripped):
        return "image/svg+xml"
    if stripped.startswith("<?xml"):
        return "application/xml"
    if stripped[:1] in ("{", "[") and len(head) < 512:
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            return "application/json"
    if stripped[:1] in ("{", "["):
        return "application/json" if _looks_like_json(stripped) else "text/plain"
    return "text/plain"


def _looks_like_json(text: str) -> bool:
    """A long document's start that reads as JSON (only its head was sniffed)."""
    return bool(re.match(r'^[\[{]\s*("|\{|\[|\]|\}|-?\d|true|false|null)', text))
