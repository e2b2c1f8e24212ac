"""Per-call request fields: checked before any request, against the deployment's limits.

Pure: no I/O. A value that the server would refuse, or that cannot go into JSON, becomes a
``ValueError`` that names the keyword, before anything is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Deepest nesting accepted in a request field. JSON Schemas and tool arguments are a few
# levels deep; this bound keeps a pathological value from exhausting the interpreter's stack.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Limits:
    """What a deployment accepts, checked client-side. ``None``: the server decides."""

    max_tokens: int | None
    response_formats: frozenset[str]
    n_max: int | None = 16
    n_with_stream: bool = False  # whether ``n > 1`` may be streamed


# Documented ranges of AI21's chat API (docs.ai21.com, Jamba API reference):
# name -> (low, high, low_is_exclusive); ``high`` None means "no upper bound here".
_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "temperature": (0.0, 2.0, False),
    "top_p": (0.0, 1.0, True),
}
_INTEGERS = ("max_tokens", "n")


def check_json(name: str, value: Any, depth: int = 0) -> None:
    """Fail early, naming the keyword, for values that cannot go into a JSON payload."""
    if value is None or isinstance(value, str | bool | int):
        return
    if depth >= MAX_DEPTH:
        raise ValueError(f"{name} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{name} has a non-string key {key!r}; JSON keys are strings")
            check_json(f"{name}[{key!r}]", item, depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(f"{name}[{i}]", item, depth + 1)
        return
    raise ValueError(f"{name} must be JSON-serializable, got a {type(value).__name__}")


def _check_number(name: str, value: Any, low: float, high: float | None, exclusive: bool) -> None:
    integer = name in _INTEGERS
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    too_low = value <= low if exclusive else value < low
    too_high = high is not None and value > high
    if too_low or too_high or (isinstance(value, float) and math.isnan(value)):
        bracket = "(" if exclusive else "["
        upper = f"{high}]" if high is not None else "inf)"
        raise ValueError(f"{name} must be in {bracket}{low}, {upper}, got {value!r}")


def check_params(params: dict[str, Any], limits: Limits, *, stream: bool) -> None:
    """Check the request fields in ``params`` (model-independent sampling fields and extras)."""
    for name, (low, high, exclusive) in _RANGES.items():
        if params.get(name) is not None:
            _check_number(name, params[name], low, high, exclusive)
    if params.get("max_tokens") is not None:
        _check_number("max_tokens", params["max_tokens"], 0, limits.max_tokens, False)
    if params.get("n") is not None:
        _check_number("n", params["n"], 1, limits.n_max, False)
        if stream and params["n"] > 1 and not limits.n_with_stream:
            raise ValueError("n must be 1 when streaming (the server streams a single answer)")
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise ValueError(f"stop must be a string or a list of strings, got {stop!r}")
    response_format = params.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in limits.response_formats:
            allowed = " or ".join(
                f'{{"type": "{k}", ...}}' for k in sorted(limits.response_formats)
            )
            raise ValueError(f"response_format must be {allowed}, got {response_format!r}")
        if kind == "json_schema" and not isinstance(response_format.get("json_schema"), dict):
            raise ValueError(
                'response_format {"type": "json_schema"} needs a "json_schema" object '
                '({"name": ..., "schema": {...}})'
            )
    for name, value in params.items():
        check_json(name, value)
