"""The body of `POST /predict` → the raw inputs a run's `InputEncoder` takes, or a 4xx.

Everything a client can get wrong is named here, before the model sees it: the content
type, the size, JSON syntax, the `{"instances": [...]}` envelope (the TensorFlow Serving /
KServe v1 convention), and each instance against what the run was trained on — a record
of column name → value for tables, a string for text, numbers nested in arrays for
images and other arrays. What the run's preprocessing itself refuses (a numeric column
holding text, NaN where the run has no imputer) arrives as its `DataError` and is
passed on with its message; unseen categories are not an error: they are encoded as
unknown, as `trainlab predict` does, and counted in the answer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainlab.predict import InputEncoder

#: The default body limit (bytes) and instance limit of one request.
MAX_BODY_BYTES = 10 * 2**20
MAX_INSTANCES = 10_000


class RequestError(Exception):
    """A request the service refuses: its HTTP status, a message and a machine-readable kind."""

    def __init__(self, status: int, message: str, kind: str = "request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: {"error": message, "kind": kind, "status": status}."""
        return {"error": self.message, "kind": self.kind, "status": self.status}


@dataclass(frozen=True)
class Limits:
    """What one request may hold: body bytes and instances (`trainlab serve` options)."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_instances: int = MAX_INSTANCES


def check_content_type(value: str | None) -> None:
    """Only JSON bodies: `application/json` (any charset of UTF-8) or `application/*+json`."""
    media = (value or "").split(";")[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media[-5:] == "+json"):
        return
    shown = f"'{media}'" if media else "none"
    raise RequestError(
        415, f"content type {shown} is not JSON; send the body as application/json", "content_type"
    )


def too_large(size: int, limits: Limits) -> RequestError:
    """The error for a body over the limit."""
    return RequestError(
        413,
        f"request body of {size:,} bytes or more exceeds the limit of {limits.max_body_bytes:,}; "
        "send fewer instances per request (or start the service with a larger --max-body-mb)",
        "too_large",
    )


def parse_instances(body: bytes, limits: Limits) -> list[Any]:
    """The `instances` list of a JSON body, or a RequestError naming what is wrong."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not UTF-8 text; send JSON", "json") from None
    except RecursionError:
        raise RequestError(400, "the body's JSON is nested too deeply to read", "json") from None
    except ValueError as exc:  # JSONDecodeError, and integers of over 4,300 digits
        raise RequestError(400, f"the body is not valid JSON: {_short(exc)}", "json") from None
    if not isinstance(data, dict):
        raise RequestError(
            400, f'the body must be a JSON object {{"instances": [...]}}, not {_type(data)}'
        )
    if "instances" not in data:
        keys = ", ".join(repr(k) for k in list(data)[:5]) or "none"
        raise RequestError(
            400, f'the body has no "instances" key (keys: {keys}); send {{"instances": [...]}}'
        )
    instances = data["instances"]
    if not isinstance(instances, list):
        raise RequestError(400, f'"instances" must be a list of inputs, not {_type(instances)}')
    if not instances:
        raise RequestError(400, '"instances" is empty; send at least one input')
    if len(instances) > limits.max_instances:
        raise RequestError(
            413,
            f"{len(instances):,} instances exceed the limit of {limits.max_instances:,} per "
            "request; split them (or start the service with a larger --max-instances)",
            "too_large",
        )
    return instances


def input_kind(encoder: InputEncoder) -> str:
    """'text', 'table' (records with column names) or 'array' (numbers) for this run."""
    pre = encoder.preprocessor
    if pre.kind == "text":
        return "text"
    if pre.from_table and pre.column_names:
        return "table"
    return "array"


def decode_instances(encoder: InputEncoder, instances: list[Any]) -> Any:
    """Instances checked against the run's inputs → what `encoder.encode` takes.

    Records (tables) come back as a list of dicts, strings as a list, numbers as a
    float64 array (N, *sample shape). A RequestError (422) names the first bad instance.
    """
    kind = input_kind(encoder)
    if kind == "text":
        for i, item in enumerate(instances):
            if not isinstance(item, str):
                raise _bad(f"instance {i} is {_type(item)}; this text run takes strings")
        return instances
    if kind == "table":
        return _records(instances, table_columns(encoder))
    return _arrays(instances, _sample_shape(encoder))


def table_columns(encoder: InputEncoder) -> list[str]:
    """The columns a record must hold: the training table's kept input columns."""
    schema = (encoder.info.table or {}).get("schema")
    if schema:
        return [c["name"] for c in schema["columns"] if c["role"] not in _DROPPED]
    return list(encoder.preprocessor.column_names or [])


_DROPPED = ("identifier", "text", "constant", "drop")
_SCALARS = (str, int, float, bool, type(None))


def _records(instances: list[Any], columns: list[str]) -> list[dict[str, Any]]:
    for i, item in enumerate(instances):
        if not isinstance(item, dict):
            raise _bad(
                f"instance {i} is {_type(item)}; this table run takes records (JSON objects) "
                f"of column name → value, with columns {_names(columns)}"
            )
        for name in columns:
            if name not in item:
                raise _bad(
                    f"instance {i} lacks column '{name}'; the run needs columns "
                    f"{_names(columns)} (send null for a missing value)"
                )
            value = item[name]
            if not isinstance(value, _SCALARS):
                raise _bad(
                    f"instance {i}, column '{name}': {_type(value)}; give a number, a string "
                    "or null"
                )
    return instances


def _sample_shape(encoder: InputEncoder) -> tuple[int, ...]:
    pre = encoder.preprocessor
    shape = pre.input_shape if pre.input_shape is not None else encoder.info.input_shape
    return tuple(shape)


def accepted_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shapes one array instance may have: the sample's, flat, and (H, W) for a
    single-channel (1, H, W) image."""
    out = [shape, (math.prod(shape),)]
    if len(shape) == 3 and shape[0] == 1:
        out.append(shape[1:])
    return list(dict.fromkeys(out))


def _arrays(instances: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(instances, dtype=np.float64)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _bad(
            f"instances must be numbers nested in arrays of one shape (each of shape "
            f"{_shape_list(shape)}): {_short(exc)}"
        ) from None
    sample = tuple(arr.shape[1:])
    if sample not in accepted_shapes(shape):
        raise _bad(
            f"instances have shape {list(sample)}; the run takes instances of shape "
            f"{_shape_list(shape)}"
        )
    return arr.reshape((len(arr), *shape))


def _shape_list(shape: tuple[int, ...]) -> str:
    return " or ".join(str(list(s)) for s in accepted_shapes(shape))


def input_schema(encoder: InputEncoder) -> dict[str, Any]:
    """What one instance is, for /metadata: kind, and columns or shape."""
    kind = input_kind(encoder)
    if kind == "text":
        return {"kind": "text", "instance": "a string", "max_tokens": encoder.info.input_shape[-1]}
    if kind == "array":
        shape = _sample_shape(encoder)
        return {
            "kind": "array",
            "instance": "numbers nested in arrays",
            "shape": list(shape),
            "accepted_shapes": [list(s) for s in accepted_shapes(shape)],
        }
    return {
        "kind": "table",
        "instance": "a JSON object of column name → value (null = missing)",
        "columns": _column_facts(encoder),
    }


def _column_facts(encoder: InputEncoder) -> list[dict[str, Any]]:
    pre = encoder.preprocessor
    names = pre.column_names or []
    cat, values = pre.p.get("categorical") or [], pre.p.get("categories") or []
    categories = {names[j]: list(v) for j, v in zip(cat, values, strict=True)}
    schema = (encoder.info.table or {}).get("schema")
    if schema:
        roles = [(c["name"], c["role"]) for c in schema["columns"] if c["role"] not in _DROPPED]
    else:
        roles = list(zip(names, pre.column_kinds or ["numeric"] * len(names), strict=False))
    out = []
    for name, role in roles:
        entry: dict[str, Any] = {"name": name, "role": role}
        if name in categories:
            entry["categories"] = categories[name]
        out.append(entry)
    return out


def _bad(message: str) -> RequestError:
    return RequestError(422, message, "data")


def _type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def _names(columns: list[str]) -> str:
    shown = ", ".join(columns[:20])
    return shown + (f", … ({len(columns)} in all)" if len(columns) > 20 else "")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
