"""Every way a settings, DeepSpeed or JSONL file can be unreadable is one message, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from turbo.errors import DataError, SettingsError
from turbo.reading import MAX_DEPTH, jsonl_lines, path_problem, read_json
from turbo.settings.loading import load_settings, parse_override
from turbo.settings.pipelines.train.sft import SftExperimentSettings


def read(path: Path) -> str:
    with pytest.raises(SettingsError) as info:
        read_json(path, "settings file", SettingsError)
    return str(info.value)


def test_files_that_are_not_utf8_name_the_line_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(json.dumps({"log_path": "x"}).encode("utf-16"))
    assert (
        read(path)
        == f"{path}:1: not UTF-8: byte 0xff at byte offset 0; it looks like UTF-16: save it as UTF-8"
    )
    data = '{\n  "seed": 1,\n  "log_path": "caf\u00e9"\n}'.encode("latin-1")
    path.write_bytes(data)
    assert data.index(b"\xe9") == 33
    assert read(path) == f"{path}:3: not UTF-8: byte 0xe9 at byte offset 33; save it as UTF-8"
    path.write_bytes(b'\xef\xbb\xbf{"seed": 1}')  # a UTF-8 byte order mark is fine
    assert read_json(path, "settings file", SettingsError) == {"seed": 1}


def test_records_that_are_not_utf8_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"id": "1"}\n{"id": "2"}\n{"id": "\xff"}\n')
    with pytest.raises(
        DataError, match=r"r.jsonl:3: not UTF-8: byte 0xff at byte offset 32; save it as UTF-8$"
    ):
        list(jsonl_lines(path, "dataset file", DataError))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100, 1000, 50_000])
def test_deep_nesting_is_refused(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"a":\n' + "[" * depth + "]" * depth + "}")
    assert read(path) == f"{path}:2: JSON nested deeper than {MAX_DEPTH} levels"
    shallow = 20
    path.write_text(
        '{"a":' + "[" * shallow + "]" * shallow + ', "b": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}'
    )
    assert read_json(path, "settings file", SettingsError)["b"].startswith("[[[")  # brackets in strings


def test_huge_integers_and_overflowing_floats(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{\n"seed": ' + "9" * 5000 + "}")
    assert read(path) == f"{path}:2: an integer of 5000 digits; at most 4300 are allowed"
    path.write_text('{"trainer_settings": {"learning_rate": 1e999}}')
    with pytest.raises(
        SettingsError, match="trainer_settings.learning_rate: Input should be a finite number"
    ):
        load_settings(path, SftExperimentSettings)


def test_paths_that_cannot_be_read(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    assert read(loop) == f"{loop}: settings file cannot be opened: Too many levels of symbolic links"
    assert read(tmp_path) == f"{tmp_path}: settings file is a folder, expected a file"
    assert (
        read(Path("/dev/null")) == "/dev/null: settings file is not a regular file (a device, pipe or socket)"
    )
    assert read(tmp_path / "none.json") == f"{tmp_path / 'none.json'}: settings file does not exist"
    assert "cannot be read: Input/output error" in read(Path("/proc/self/mem"))
    assert "not valid JSON" in read(Path("/proc/self/status"))
    assert "has a name of 300 bytes; the OS allows at most 255" in read(tmp_path / ("a" * 300))
    assert "path is 4999 bytes long; the OS allows at most 4095" in read(Path("a/" * 2500))
    assert path_problem("a\x00b") == "contains a NUL byte"
    assert path_problem("a\ud800") is not None


def test_overrides_are_read_as_carefully(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="nested deeper"):
        parse_override("seed=" + "[" * 5000 + "]" * 5000)
    with pytest.raises(SettingsError, match="an integer of 5000 digits"):
        parse_override("seed=" + "1" * 5000)
    assert parse_override("a.b=not json") == (["a", "b"], "not json")


def test_lone_surrogates_are_not_text(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "1", "text": "\\ud83d\\ude00 fine"}\n{"id": "2", "text": "\\ud800 alone"}\n')
    lines = jsonl_lines(path, "dataset file", DataError)
    assert next(lines)[1]["text"] == "\U0001f600 fine"
    with pytest.raises(DataError, match=r"r.jsonl:2: a string holds a lone UTF-16 surrogate"):
        next(lines)


def test_a_cut_jsonl_line_is_named_by_its_own_number(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "1"}\n{"id": "2", "messages": \n{"id": "3"}\n')
    with pytest.raises(DataError, match=r"r.jsonl:2: not valid JSON: Expecting value \(column 25\)"):
        list(jsonl_lines(path, "dataset file", DataError))
