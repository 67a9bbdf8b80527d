"""What an extracted attribute is: `{type, value, confidence}`, and validation. The JSON schema sent to
OpenAI-compatible endpoints is derived from ExtractionResult by the openai client (ml/extractors.py)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

# One vocabulary per type (see seeds/attribute_types.csv for descriptions and single-valuedness).
ATTRIBUTE_TYPES = (
    "article_type", "colour", "pattern", "material", "sleeve", "neckline", "fit", "occasion",
    "gender", "season", "length", "closure", "style", "sport", "category",
)
AttributeType = Literal[ATTRIBUTE_TYPES]  # type: ignore[valid-type]


class ExtractedAttribute(BaseModel):
    type: AttributeType
    value: str = Field(min_length=1, max_length=60)
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("value")
    @classmethod
    def _clean(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("empty value")
        return value


class ExtractionResult(BaseModel):
    attributes: list[ExtractedAttribute] = Field(max_length=40)


class SchemaError(ValueError):
    """The model's answer does not match the schema (retried by the caller)."""


def parse_structured(content: str | None) -> list[ExtractedAttribute]:
    if not content:
        raise SchemaError("empty response")
    try:
        return ExtractionResult.model_validate(json.loads(content)).attributes
    except (json.JSONDecodeError, ValidationError) as exc:
        raise SchemaError(f"response does not match the attribute schema: {exc}") from exc
