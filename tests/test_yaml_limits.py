"""YAML read with limits: hostile documents are refused on one short line, in little memory."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paretoedge._yaml import (
    MAX_BYTES,
    MAX_DEPTH,
    YAMLSyntaxError,
    check_document,
    decode_text,
    load_yaml,
)
from paretoedge.errors import ConfigError
from paretoedge.search import load_config


def _laughs(levels: int, width: int = 9, leaf: str = "lol") -> str:
    lines = [f"l0: &l0 [{', '.join([repr(leaf)] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _refused(text: str, needle: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_yaml(text, "study.yaml")
    message = str(info.value)
    assert needle in message, message
    assert "\n" not in message and len(message) < 300, message[:300]
    return info.value


def test_billion_laughs_is_refused_without_expanding() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused(_laughs(9), "once aliases are expanded")
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 200_000  # the expanded document would be ~10^9 nodes


def test_nine_to_the_fifth_is_refused_on_a_short_line() -> None:
    _refused(_laughs(5, leaf="x" * 10) + "name: *l4\n", "once aliases are expanded")


def test_small_alias_use_is_fine() -> None:
    doc = load_yaml("base: &b {low: 0.0, high: 0.5}\nother: *b\nmerged: {<<: *b, step: 0.1}\n")
    assert doc["other"] == {"low": 0.0, "high": 0.5}
    assert doc["merged"] == {"low": 0.0, "high": 0.5, "step": 0.1}


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [1, [2, *a]]\n"],
    ids=["list", "mapping", "inner"],
)
def test_recursive_anchors_are_refused(text: str) -> None:
    _refused(text, "recursive aliases")


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_deep_nesting_is_refused(opener: str) -> None:
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    if opener == "- ":
        text = "".join("  " * i + "-\n" for i in range(40)) + "  " * 40 + "x\n"
    else:
        text = "x: " + opener * 5000 + "1" + closer * 5000 + "\n"
    _refused(text, f"nested at most {MAX_DEPTH} levels")


def test_depth_through_aliases_is_counted() -> None:
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 40)]
    _refused("\n".join(lines) + "\n", "aliases expanded")


def test_duplicate_keys_are_refused() -> None:
    _refused("name: a\nseed: 1\nname: b\n", "duplicate key 'name' on line 3")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("name: x\n".encode("utf-16"), "UTF-16"),
        ("name: x\n".encode("utf-16-be"), "UTF-16"),
        (b"name: a\x00b\n", "NUL"),
        (b"name: \xff\xfe\xfd\n", "invalid UTF-8 at byte 6"),
        (bytes(range(256)) * 4, "NUL"),
        (b"x" * (MAX_BYTES + 1), "at most 262,144 bytes"),
    ],
    ids=["utf16-bom", "utf16-be", "nul", "invalid-utf8", "binary", "too-big"],
)
def test_files_that_are_not_utf8_yaml_are_refused(data: bytes, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode_text(data, "f.yaml")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_utf8_bom_is_fine() -> None:
    assert load_yaml(decode_text("\ufeffname: x\n".encode(), "f.yaml")) == {"name": "x"}


@pytest.mark.parametrize(
    "text",
    ["a: [1, 2", "a: b: c", "a: !!python/object:os.system x", "a: *nowhere", "a: \x07"],
    ids=["unclosed", "mapping", "python-tag", "undefined-alias", "control-char"],
)
def test_syntax_errors_are_one_line(text: str) -> None:
    with pytest.raises(YAMLSyntaxError) as info:
        load_yaml(text, "s.yaml")
    assert "\n" not in str(info.value) and "valid YAML" in str(info.value)


def test_yaml_1_2_exponents_are_floats() -> None:
    assert load_yaml("a: 5e-5\nb: 1E3\nc: 2e\nd: 12\n") == {"a": 5e-5, "b": 1e3, "c": "2e", "d": 12}


@pytest.mark.parametrize(
    "data",
    [
        {"a": 1},
        [[[["ok"]]]],
    ],
)
def test_check_document_accepts_small_documents(data: Any) -> None:
    check_document(data)


def test_check_document_is_iterative_and_bounded() -> None:
    deep: Any = []
    for _ in range(50_000):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested at most"):
        check_document(deep)
    itself: list[Any] = []
    itself.append(itself)
    with pytest.raises(ConfigError, match="nested at most"):
        check_document(itself)
    wide = {"k": ["x" * 1000] * 1000}
    with pytest.raises(ConfigError, match="nodes and characters"):
        check_document(wide)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_any_bytes_load_or_fail_with_one_line(data: bytes) -> None:
    try:
        load_yaml(decode_text(data, "f.yaml"), "f.yaml")
    except ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400


@pytest.mark.parametrize(
    "body",
    [_laughs(9), "a: &a [*a]\n", "x: " + "[" * 5000 + "]" * 5000 + "\n"],
    ids=["laughs", "recursive", "deep"],
)
def test_load_config_refuses_hostile_files(tmp_path: Path, body: str) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "config" and "\n" not in str(info.value)
