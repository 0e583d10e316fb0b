"""The OpenAPI description of `trainlab serve`'s endpoints (FastAPI's `/openapi.json`).

The service reads and checks `/predict` bodies itself (deploy/serve_inputs.py) so that
every refusal is one `{"error": ...}` body with the right status; these pydantic models
only describe the JSON shapes for the schema and the `/docs` page.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

import trainlab


class Prediction(BaseModel):
    """One instance's answer: label, class index and probabilities (classification) or
    value (regression)."""

    label: str | int | None = Field(None, description="Class name (its index if unnamed).")
    class_index: int | None = Field(None, description="Position of the class in `classes`.")
    probabilities: list[float] | None = Field(None, description="Per class, by class index.")
    value: float | list[float] | None = Field(None, description="Regression: the prediction.")


class PredictResponse(BaseModel):
    """POST /predict's answer: one prediction per instance, in order."""

    predictions: list[Prediction]
    unseen_categories: dict[str, int] | None = Field(
        None, description="Per table column, rows holding a category unseen in training "
        "(encoded as unknown, still predicted); absent when none."
    )  # fmt: skip


class ErrorBody(BaseModel):
    """Every refused request: what is wrong, a machine-readable kind, the status."""

    error: str
    kind: str = Field(description="content_type, too_large, json, request, data, http, internal")
    status: int


class Health(BaseModel):
    """GET /health: the service is up and holds its model."""

    status: str
    name: str
    backend: str


def app_info(model: Any) -> dict[str, Any]:
    """FastAPI's title, version and description for the served model."""
    name = model.encoder.recipe.name
    return {
        "title": f"trainlab serve: {name}",
        "version": trainlab.__version__,
        "description": f"Predictions of trainlab run '{name}' ({model.kind} at {model.source}, "
        f'backend {model.backend.name}). POST /predict {{"instances": [...]}}; '
        "GET /metadata says what one instance is.",
    }


def predict_doc(service: Any) -> dict[str, Any]:
    """The route arguments documenting POST /predict (its body is read by the service)."""
    from trainlab.deploy.serve_inputs import input_schema

    schema = input_schema(service.model.encoder)
    limits = service.limits
    body = {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.max_instances,
                "description": f"Raw inputs, each {schema['instance']}.",
                "items": _instance_schema(schema),
            }
        },
    }
    errors = {400: "not JSON, or no instances list", 413: "body or instance count over the limit",
              415: "content type not application/json", 422: "an instance the run cannot take",
              500: "a bug in trainlab (one line, no traceback)"}  # fmt: skip
    return {
        "summary": "Predict raw inputs",
        "description": f"At most {limits.max_body_bytes:,} bytes and {limits.max_instances:,} "
        "instances per request.",
        "openapi_extra": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}}
        },
        "responses": {
            200: {"model": PredictResponse, "description": "One prediction per instance"},
            **{code: {"model": ErrorBody, "description": text} for code, text in errors.items()},
        },
    }


def _instance_schema(schema: dict[str, Any]) -> dict[str, Any]:
    if schema["kind"] == "text":
        return {"type": "string"}
    if schema["kind"] == "array":
        return {"type": "array", "description": f"shape {schema['accepted_shapes']}"}
    properties = {}
    for column in schema["columns"]:
        entry: dict[str, Any] = {"type": ["number", "string", "null"]}
        if column.get("categories"):
            entry["examples"] = column["categories"][:5]
        properties[column["name"]] = entry
    return {"type": "object", "required": list(properties), "properties": properties}


def health_doc() -> dict[str, Any]:
    """The route arguments documenting GET /health."""
    return {"summary": "Liveness", "responses": {200: {"model": Health}}}


def metadata_doc() -> dict[str, Any]:
    """The route arguments documenting GET /metadata."""
    return {
        "summary": "Recipe, metrics, input schema, version and limits",
        "responses": {200: {"description": "The served model's facts (a JSON object)"}},
    }
