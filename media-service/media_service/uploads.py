"""Streaming multipart parsing with caps: files go to disk, nothing over a limit is read whole."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from photogram_contracts.schemas import (
    MAX_CAPTION_CHARS,
    MAX_LOCATION_CHARS,
    multi_line_text,
    single_line_text,
)
from python_multipart.multipart import MultipartParser, parse_options_header

from media_service.imaging import SNIFF_BYTES, sniff_image_type
from photogram_common.problems import Problem

MAX_FILES = 10
MAX_FIELD_CHARS = {"caption": MAX_CAPTION_CHARS, "location": MAX_LOCATION_CHARS}
# How each text field is checked: a caption may break lines, a location may not.
_FIELD_TEXT = {"caption": multi_line_text, "location": single_line_text}
# A field's bytes may be up to 4 per character in UTF-8.
_MAX_FIELD_BYTES = 4 * max(MAX_FIELD_CHARS.values())
# RFC 2046: 1 to 70 of these characters, the last not a space.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


@dataclass
class UploadedFile:
    path: Path | None
    content_type: str | None = None
    size: int = 0
    head: bytes = b""
    sha256: Any = field(default_factory=hashlib.sha256)


@dataclass
class ParsedUpload:
    directory: Path | None
    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A text field as the post keeps it: a form's empty field is no value, not ""."""
        return self.fields.get(name) or None

    def digest(self) -> str:
        """What the upload asks for, as a hash: the caption and location as the post would
        keep them and each file's bytes in order. Framing (the boundary, part headers, file
        names) is left out, so a client's retry of the same upload has the same digest."""
        canonical = {
            "caption": self.text("caption"),
            "location": self.text("location"),
            "files": [item.sha256.hexdigest() for item in self.files],
        }
        encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()


def _invalid(detail: str, loc: str) -> Problem:
    return Problem(
        422,
        detail,
        title="Validation failed",
        extra={"errors": [{"loc": ["body", loc], "msg": detail, "type": "value_error"}]},
    )


class _UploadParser:
    """Callbacks for python-multipart; raises Problem as soon as a limit is crossed."""

    def __init__(self, directory: Path | None, *, max_file_bytes: int) -> None:
        self.result = ParsedUpload(directory=directory)
        self._max_file_bytes = max_file_bytes
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._file: UploadedFile | None = None
        self._handle: BinaryIO | None = None
        self._field: str | None = None
        self._field_bytes = bytearray()

    def on_part_begin(self) -> None:
        self._headers = {}
        self._file = None
        self._field = None
        self._field_bytes = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == "file":
            if len(self.result.files) >= MAX_FILES:
                raise _invalid(f"At most {MAX_FILES} files per post.", "file")
            directory = self.result.directory
            path = None if directory is None else directory / f"part-{len(self.result.files)}"
            self._file = UploadedFile(path=path)
            # Without a directory the files are only counted and hashed (a digest).
            self._handle = None if path is None else path.open("wb")
            self.result.files.append(self._file)
        elif name in MAX_FIELD_CHARS:
            if name in self.result.fields:
                raise _invalid(f"{name} is given more than once.", name)
            self._field = name
        else:
            # Refused rather than read past: nothing else has a use, and nothing unbounded
            # should stream through the parser.
            raise _invalid("Only file, caption and location parts are accepted.", name[:64])

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is not None:
            self._file.size += len(chunk)
            if self._file.size > self._max_file_bytes:
                raise Problem(
                    413,
                    f"A file is over {self._max_file_bytes // (1024 * 1024)} MB.",
                    title="Content too large",
                )
            if len(self._file.head) < SNIFF_BYTES:
                self._file.head += chunk[: SNIFF_BYTES - len(self._file.head)]
            self._file.sha256.update(chunk)
            if self._handle is not None:
                self._handle.write(chunk)
        elif self._field is not None:
            self._field_bytes += chunk
            if len(self._field_bytes) > _MAX_FIELD_BYTES:
                raise _invalid(f"{self._field} is too long.", self._field)

    def on_part_end(self) -> None:
        if self._file is not None:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
        elif self._field is not None:
            self.result.fields[self._field] = _field_text(self._field, bytes(self._field_bytes))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


async def parse_upload(
    *, content_type: str, body: AsyncIterator[bytes], max_file_bytes: int, spool: bool = True
) -> ParsedUpload:
    """Parse the upload into a temp directory; the caller removes it (see discard).

    Without `spool` nothing is written: the files are only counted, sniffed and hashed, for
    the upload's digest."""
    kind, options = parse_options_header(content_type.encode("latin-1"))
    if kind != b"multipart/form-data":
        raise Problem(
            415, "Send the upload as multipart/form-data.", title="Unsupported media type"
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise Problem(400, "The multipart body has no boundary.", title="Bad request")
    if not _BOUNDARY.fullmatch(boundary):
        raise Problem(
            400, "The multipart boundary is not a valid one (RFC 2046).", title="Bad request"
        )
    directory = Path(tempfile.mkdtemp(prefix="photogram-upload-")) if spool else None
    handler = _UploadParser(directory, max_file_bytes=max_file_bytes)
    try:
        parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": handler.on_part_begin,
                "on_header_field": handler.on_header_field,
                "on_header_value": handler.on_header_value,
                "on_header_end": handler.on_header_end,
                "on_headers_finished": handler.on_headers_finished,
                "on_part_data": handler.on_part_data,
                "on_part_end": handler.on_part_end,
            },
        )
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except Problem:
        handler.close()
        discard(directory)
        raise
    except Exception as exc:
        handler.close()
        discard(directory)
        raise Problem(400, "The multipart body is malformed.", title="Bad request") from exc
    except BaseException:
        # Cancelled (the request's deadline passed, the client left): no temp files behind.
        handler.close()
        discard(directory)
        raise
    return _validated(handler.result)


def _field_text(name: str, raw: bytes) -> str:
    """A text part as the post will keep it, or a 422 naming the part."""
    try:
        text = _FIELD_TEXT[name](raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _invalid(f"{name} is not UTF-8 text.", name) from exc
    except ValueError as exc:
        raise _invalid(f"{name} {exc}.", name) from exc
    limit = MAX_FIELD_CHARS[name]
    if len(text) > limit:
        raise _invalid(f"{name} is over {limit} characters.", name)
    return text


def _validated(upload: ParsedUpload) -> ParsedUpload:
    try:
        if not upload.files:
            raise _invalid("Attach at least one file.", "file")
        for item in upload.files:
            item.content_type = sniff_image_type(item.head)
            if item.content_type is None:
                raise Problem(
                    415,
                    "Only JPEG, PNG, WebP and HEIC images are accepted.",
                    title="Unsupported image type",
                )
    except Problem:
        discard(upload.directory)
        raise
    return upload


def discard(directory: Path | None) -> None:
    """Remove an upload's temp files."""
    if directory is None:
        return
    for path in directory.glob("*"):
        path.unlink(missing_ok=True)
    if directory.exists():
        os.rmdir(directory)
