"""Reading the files a user hands turbo: every way a file can be unreadable becomes one message.

A settings file, a DeepSpeed config or a JSONL dataset may be missing, a folder, a device, a
symlink loop, a name too long for the OS, not UTF-8, or JSON nested thousands of levels deep or
holding an integer of thousands of digits. Each of these is a `TurboError` naming the file (and
line and byte offset where there is one), never a Python traceback.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from turbo.errors import TurboError

MAX_DEPTH = 64  # JSON nesting turbo accepts (settings are ~8 deep, records ~4)
MAX_INT_DIGITS = 4300  # Python's own limit for int(str)
_LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def path_problem(value: str | Path) -> str | None:
    """Why `value` can never name a file on this OS (NUL byte, too long), or None."""
    text = str(value)
    if "\x00" in text:
        return "contains a NUL byte"
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError:
        return "is not valid text (a lone UTF-16 surrogate)"
    limit = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
    if len(encoded) >= limit:
        return f"is {len(encoded)} bytes long; the OS allows at most {limit - 1}"
    name_max = os.pathconf("/", "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    for part in encoded.split(b"/"):
        if len(part) > name_max:
            return f"has a name of {len(part)} bytes; the OS allows at most {name_max}"
    return None


def output_folder_problem(path: str | Path) -> str | None:
    """Why the folder `path` cannot be created or written (under a file, not writable), or None."""
    problem = path_problem(path)
    if problem:
        return f"the path {problem}"
    folder = Path(path)
    try:
        if folder.exists() and not folder.is_dir():
            return f"{folder} is a file, not a folder"
        ancestor = folder
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            return f"{ancestor} is a file, so no folder can be made under it"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"{ancestor} is not writable"
    except OSError as exc:  # a symlink loop, a name too long for this file system
        return f"{folder}: {exc.strerror or exc}"
    return folder_creation_problem(ancestor)


def folder_creation_problem(folder: Path) -> str | None:
    """Why no folder can be made in the existing `folder` (/proc, /sys, a read-only mount), asked of the
    OS by making an empty one and removing it at once; None when one can. Permission bits alone do not
    say it: root passes os.access where the file system still refuses."""
    try:
        probe = tempfile.mkdtemp(prefix=".turbo-probe.", dir=folder)
    except OSError as exc:
        return f"no folder can be made in {folder}: {exc.strerror or exc}"
    os.rmdir(probe)
    return None


def open_regular_file(path: str | Path, what: str, error: type[TurboError]) -> BinaryIO:
    """`path` opened for reading in binary, or `error` saying why it cannot be (one line)."""
    problem = path_problem(path)
    if problem:
        raise error(f"{str(path)[:200]}: {what} path {problem}")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: {what} does not exist") from None
    except OSError as exc:
        raise error(f"{path}: {what} cannot be opened: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: {what} is a folder, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: {what} is not a regular file (a device, pipe or socket)")
    try:
        return open(path, "rb")  # noqa: SIM115 (the caller closes it)
    except OSError as exc:
        raise error(f"{path}: {what} cannot be read: {exc.strerror or exc}") from None


def read_text(path: str | Path, what: str, error: type[TurboError]) -> str:
    """The whole file as text; a byte that is not UTF-8 is named by line and byte offset."""
    with open_regular_file(path, what, error) as handle:
        try:
            data = handle.read()
        except OSError as exc:
            raise error(f"{path}: {what} cannot be read: {exc.strerror or exc}") from None
    return decode_utf8(data, str(path), error)


def decode_utf8(data: bytes, where: str, error: type[TurboError], line: int = 1, offset: int = 0) -> str:
    """`data` decoded as UTF-8 (a leading BOM is dropped); `where:line` and the byte offset otherwise.

    `line` and `offset` are those of data[0] in its file, so one line of a JSONL file is located too.
    """
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        bad_line = line + data.count(b"\n", 0, exc.start)
        hint = "; save it as UTF-8"
        if offset == 0 and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = "; it looks like UTF-16: save it as UTF-8"
        raise error(
            f"{where}:{bad_line}: not UTF-8: byte 0x{data[exc.start]:02x} at byte offset "
            f"{offset + exc.start}{hint}"
        ) from None


class _IntegerTooLong(ValueError):
    def __init__(self, digits: str) -> None:
        super().__init__(digits)
        self.digits = digits


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _IntegerTooLong(text)
    return int(text)


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, max(index, 0)) + 1


def _depth_exceeded_at(text: str) -> int | None:
    """The index where brackets nest deeper than MAX_DEPTH (outside strings), or None."""
    depth = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return index
        elif char in "]}":
            depth -= 1
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest deeper than `limit` in a parsed value (level by level)."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        below: list[Any] = []
        for node in level:
            below += [
                child for child in (node.values() if type(node) is dict else node) if type(child) in _NESTED
            ]
        if not below:
            return False
        level = below
    return True


_NESTED = (dict, list)


def parse_json(text: str, where: str, error: type[TurboError], line: int = 1) -> Any:
    """`text` parsed as JSON; every failure is `error` naming `where:line` (line of text[0] is `line`)."""

    def too_deep() -> TurboError:
        index = _depth_exceeded_at(text) or 0
        return error(
            f"{where}:{line + _line_of(text, index) - 1}: JSON nested deeper than {MAX_DEPTH} levels"
        )

    try:
        value = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise error(
            f"{where}:{line + exc.lineno - 1}: not valid JSON: {exc.msg} (column {exc.colno})"
        ) from None
    except _IntegerTooLong as exc:
        at = line + _line_of(text, text.find(exc.digits)) - 1
        raise error(
            f"{where}:{at}: an integer of {len(exc.digits)} digits; at most {MAX_INT_DIGITS} are allowed"
        ) from None
    except RecursionError:
        raise too_deep() from None
    if text.count("[") + text.count("{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise too_deep()
    if _LONE_SURROGATE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise error(
                f"{where}:{line}: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff without its "
                "pair), which is not text"
            ) from None
    return value


def read_json(path: str | Path, what: str, error: type[TurboError]) -> Any:
    """A whole JSON file, read and parsed with every failure as one `error`."""
    return parse_json(read_text(path, what, error), str(path), error)


def jsonl_lines(path: str | Path, what: str, error: type[TurboError]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for every non-blank line of a JSONL file."""
    with open_regular_file(path, what, error) as handle:
        offset = 0
        number = 0
        while True:
            try:
                data = handle.readline()
            except OSError as exc:
                raise error(f"{path}: {what} cannot be read: {exc.strerror or exc}") from None
            if not data:
                return
            number += 1
            text = decode_utf8(data, str(path), error, line=number, offset=offset)
            offset += len(data)
            if text.strip():
                yield number, parse_json(text.rstrip("\r\n"), str(path), error, line=number)
