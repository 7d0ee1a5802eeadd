"""Hypothesis strategies: JSON documents drawn from a JSON Schema, and the ways users damage files."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

MAX_DEPTH = 6

BAD_NUMBERS: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    -1,
    0,
    1,
    -(2**63),
    2**64,
    2**70,
    10**400,
    1e300,
    -1e-300,
    0.5,
]
BAD_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff x",
    "{role!x}",
    "{role:d}",
    "{other}",
    "{",
    "}",
    "../../x",
    "/",
    "/dev/null",
    "/proc/self/mem",
    "/proc/self/status",
    "a" * 300,
    "a/" * 2100,
    "auto",
    "true",
    "null",
    "zero3",
    "LORA",
    "\u202e\ufeff",
    "é",
    "<image>",
]
# raw JSON fragments that json.dumps cannot write
RAW_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000, "-" + "1" * 4400, "1" * 300]


def json_leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(BAD_NUMBERS),
        st.sampled_from(BAD_STRINGS),
        st.text(max_size=12),
    )


def any_json() -> st.SearchStrategy[Any]:
    return st.recursive(
        json_leaves(),
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
        ),
        max_leaves=8,
    )


def from_schema(node: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Documents that follow `node` (a pydantic JSON Schema), with values near and at its bounds."""
    if "$ref" in node:
        return from_schema(defs[node["$ref"].rsplit("/", 1)[1]], defs, depth)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return st.one_of([from_schema(option, defs, depth) for option in node[key]])
    if "allOf" in node:
        return from_schema(node["allOf"][0], defs, depth)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        if depth >= MAX_DEPTH:
            return st.just({})
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        if not properties:
            values = node.get("additionalProperties")
            value = from_schema(values, defs, depth + 1) if isinstance(values, dict) else json_leaves()
            return st.dictionaries(st.text(max_size=8), value, max_size=3)
        return st.fixed_dictionaries(
            {name: from_schema(properties[name], defs, depth + 1) for name in properties if name in required},
            optional={
                name: from_schema(properties[name], defs, depth + 1)
                for name in properties
                if name not in required
            },
        )
    if kind == "array":
        items = node.get("items", {})
        return st.lists(
            from_schema(items, defs, depth + 1) if items else json_leaves(),
            min_size=node.get("minItems", 0),
            max_size=max(node.get("minItems", 0), 3),
        )
    if kind == "string":
        return st.one_of(st.text(max_size=16), st.sampled_from(BAD_STRINGS))
    if kind in ("integer", "number"):
        bounds = [
            node[key] for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if key in node
        ]
        near = [value + delta for value in bounds for delta in (-1, 0, 1)]
        numbers = st.integers(-(2**40), 2**40) if kind == "integer" else st.floats(-1e6, 1e6)
        return st.one_of(numbers, st.sampled_from(near or [0]), st.sampled_from(BAD_NUMBERS))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_leaves()


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _set(document: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


@st.composite
def damaged_tree(draw: st.DrawFn, document: Any) -> Any:
    """`document` (a copy) with one to three keys dropped, retyped or given bad numbers or strings."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        action = draw(st.sampled_from(["drop", "retype", "number", "string", "wrap", "empty"]))
        if action == "drop" and path:
            parent = document
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        elif action == "retype":
            document = _set(document, path, draw(any_json()))
        elif action == "number":
            document = _set(document, path, draw(st.sampled_from(BAD_NUMBERS)))
        elif action == "string":
            document = _set(document, path, draw(st.sampled_from(BAD_STRINGS)))
        elif action == "wrap":
            node = document
            for key in path:
                node = node[key]
            document = _set(document, path, draw(st.sampled_from([[node], {"value": node}])))
        else:
            document = _set(document, path, draw(st.sampled_from([{}, [], None])))
    return document


@st.composite
def damaged_text(draw: st.DrawFn, document: Any) -> bytes:
    """The JSON text of `document`, sometimes damaged as bytes: cut, a byte changed, a key repeated,
    a raw number no JSON writer makes, deep nesting, or another encoding."""
    text = json.dumps(document, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))
    action = draw(
        st.sampled_from(["none", "none", "cut", "byte", "duplicate", "raw_number", "nest", "encoding", "bom"])
    )
    if action == "cut":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    elif action == "duplicate" and text.startswith("{") and len(text) > 2:
        text = '{"seed": 1, "seed": "x", ' + text[1:] if text != "{}" else text
    elif action == "raw_number" and ": " in text:
        index = draw(st.sampled_from([i for i in range(len(text)) if text.startswith(": ", i)]))
        end = index + 2
        while end < len(text) and text[end] not in ",}]\n":
            end += 1
        text = text[: index + 2] + draw(st.sampled_from(RAW_NUMBERS)) + text[end:]
    elif action == "nest" and text.startswith("{"):
        depth = draw(st.sampled_from([20, 65, 1000, 50_000]))
        text = '{"deep": ' + "[" * depth + "]" * depth + ", " + text[1:] if text != "{}" else text
    data = text.encode("utf-8", "surrogatepass")
    if action == "byte" and data:
        index = draw(st.integers(0, len(data) - 1))
        data = (
            data[:index]
            + bytes([draw(st.sampled_from([0x00, 0x80, 0xC3, 0xFF, 0x7B, 0x22]))])
            + data[index + 1 :]
        )
    elif action == "encoding":
        data = text.encode(draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "cp1252"])), "replace")
    elif action == "bom":
        data = b"\xef\xbb\xbf" + data
    return data
