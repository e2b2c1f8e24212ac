"""Request-field checks (``_dialect.check_params``): pure, table-driven, exact messages."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from llama_index.llms.ai21._dialect import MAX_DEPTH, Limits, check_json, check_params

HOSTED = Limits(max_tokens=4096, response_formats=frozenset({"text", "json_object"}))
SELF_HOSTED = Limits(
    max_tokens=None,
    response_formats=frozenset({"text", "json_object", "json_schema"}),
    n_max=None,
)

ACCEPTED = [
    {},
    {"temperature": 0},
    {"temperature": 0.0},
    {"temperature": 2},
    {"temperature": 2.0},
    {"temperature": None, "top_p": None, "max_tokens": None, "n": None, "stop": None},
    {"top_p": 1e-9},
    {"top_p": 1},
    {"max_tokens": 0},
    {"max_tokens": 4096},
    {"n": 1},
    {"n": 16},
    {"stop": "END"},
    {"stop": []},
    {"stop": ["a", "b"]},
    {"response_format": {"type": "text"}},
    {"response_format": {"type": "json_object"}},
    {"seed": 7, "metadata": {"a": [1, 2.5, None, True, "x"]}},
]


@pytest.mark.parametrize("params", ACCEPTED, ids=repr)
def test_accepted(params: dict[str, Any]) -> None:
    check_params(params, HOSTED, stream=False)


HOSTED_REFUSED = [
    ({"temperature": -0.01}, "temperature must be in [0.0, 2.0], got -0.01"),
    ({"temperature": 2.01}, "temperature must be in [0.0, 2.0], got 2.01"),
    ({"temperature": math.nan}, "temperature must be in [0.0, 2.0], got nan"),
    ({"temperature": "hot"}, "temperature must be a number, got 'hot'"),
    ({"temperature": True}, "temperature must be a number, got True"),
    ({"top_p": 0}, "top_p must be in (0.0, 1.0], got 0"),
    ({"top_p": 0.0}, "top_p must be in (0.0, 1.0], got 0.0"),
    ({"top_p": 1.5}, "top_p must be in (0.0, 1.0], got 1.5"),
    ({"max_tokens": -1}, "max_tokens must be in [0, 4096], got -1"),
    ({"max_tokens": 4097}, "max_tokens must be in [0, 4096], got 4097"),
    ({"max_tokens": 1.5}, "max_tokens must be an integer, got 1.5"),
    ({"max_tokens": False}, "max_tokens must be an integer, got False"),
    ({"n": 0}, "n must be in [1, 16], got 0"),
    ({"n": 17}, "n must be in [1, 16], got 17"),
    ({"n": 2.0}, "n must be an integer, got 2.0"),
    ({"stop": 3}, "stop must be a string or a list of strings, got 3"),
    ({"stop": ["a", 1]}, "stop must be a string or a list of strings, got ['a', 1]"),
    ({"stop": ("a",)}, "stop must be a string or a list of strings, got ('a',)"),
    (
        {"response_format": {"type": "xml"}},
        'response_format must be {"type": "json_object", ...} or {"type": "text", ...}, '
        "got {'type': 'xml'}",
    ),
    (
        {"response_format": "json_object"},
        'response_format must be {"type": "json_object", ...} or {"type": "text", ...}, '
        "got 'json_object'",
    ),
    (
        {"response_format": {"type": "json_schema", "json_schema": {}}},
        'response_format must be {"type": "json_object", ...} or {"type": "text", ...}, '
        "got {'type': 'json_schema', 'json_schema': {}}",
    ),
    ({"seed": object}, "seed must be JSON-serializable, got a type"),
    ({"extra": math.inf}, "extra must be a finite number, got inf"),
]


@pytest.mark.parametrize(("params", "message"), HOSTED_REFUSED, ids=[m for _, m in HOSTED_REFUSED])
def test_refused_with_a_message_naming_the_field(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_params(params, HOSTED, stream=False)


@pytest.mark.parametrize("limits", [HOSTED, SELF_HOSTED], ids=["hosted", "self-hosted"])
def test_n_above_one_is_refused_only_when_streamed(limits: Limits) -> None:
    check_params({"n": 2}, limits, stream=False)
    check_params({"n": 1}, limits, stream=True)
    with pytest.raises(ValueError, match=r"^n must be 1 when streaming \(a streamed response"):
        check_params({"n": 2}, limits, stream=True)


def test_a_server_of_ones_own_has_no_client_side_caps() -> None:
    check_params({"max_tokens": 100_000, "n": 64}, SELF_HOSTED, stream=False)
    with pytest.raises(ValueError, match=r"^max_tokens must be in \[0, inf\), got -1$"):
        check_params({"max_tokens": -1}, SELF_HOSTED, stream=False)
    with pytest.raises(ValueError, match=r"^n must be in \[1, inf\), got 0$"):
        check_params({"n": 0}, SELF_HOSTED, stream=False)


def test_json_schema_needs_its_schema_object() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}
    check_params({"response_format": schema}, SELF_HOSTED, stream=False)
    message = (
        'response_format {"type": "json_schema"} needs a "json_schema" object '
        '({"name": ..., "schema": {...}})'
    )
    for bad in ({"type": "json_schema"}, {"type": "json_schema", "json_schema": "x"}):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            check_params({"response_format": bad}, SELF_HOSTED, stream=False)


JSON_REFUSED = [
    ({"a": {1: "x"}}, "v['a'] has a non-string key 1; JSON keys are strings"),
    ([1, [2, math.nan]], "v[1][1] must be a finite number, got nan"),
    ((1, -math.inf), "v[1] must be a finite number, got -inf"),
    ({"a": [{"b": {1, 2}}]}, "v['a'][0]['b'] must be JSON-serializable, got a set"),
    (b"bytes", "v must be JSON-serializable, got a bytes"),
]


@pytest.mark.parametrize(("value", "message"), JSON_REFUSED, ids=[m for _, m in JSON_REFUSED])
def test_check_json_names_the_path_to_the_bad_value(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_json("v", value)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_check_json_bounds_the_nesting_depth() -> None:
    check_json("v", nested(MAX_DEPTH))
    check_json("v", {"a": nested(MAX_DEPTH - 1)})
    with pytest.raises(
        ValueError, match=rf"^v(\[0\]){{{MAX_DEPTH}}} is nested more than 64 levels"
    ):
        check_json("v", nested(MAX_DEPTH + 1))
    assert MAX_DEPTH == 64


@pytest.mark.parametrize("value", [None, "s", True, 0, 1.5, [], {}, (), {"a": [None]}])
def test_check_json_accepts_json_values(value: Any) -> None:
    check_json("v", value)
