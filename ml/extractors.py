"""Attribute extraction behind one interface, three backends.

- `catalog`: the merchant's structured fields and merchant_attributes, plus known attribute
  phrases found in the title and description. Fast; runs for every product.
- `openai`: any OpenAI-compatible vision model: photo (base64 data URL, its real media type) +
  title + description in, structured output parsed into the pydantic model; transport retries
  (timeouts, 429, 5xx) by the openai client only, under the run's circuit breaker
  (ml/llm_client.py); answers that break the schema re-asked by tenacity.
- `local`: the embedded llama.cpp server (ml/llm_server.py) with Gemma-3-270M, a *base* model:
  a few-shot completion prompt over the product text, answered as `type: value` lines; the
  confidence of each line is whether its words are grounded in the product text.

Every backend returns `ExtractedAttribute`s; callers add product_id, backend, model and prompt
version to make the rows of `product_attributes_extracted`.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from tenacity import retry, retry_if_exception_type, stop_after_attempt

from ml.attribute_schema import ATTRIBUTE_TYPES, ExtractedAttribute, ExtractionResult, SchemaError
from ml.text import singularize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Product:
    product_id: str
    title: str
    description: str | None = None
    image_path: str | None = None
    fields: dict = field(default_factory=dict)               # gender, article_type, base_colour, ...
    merchant_attributes: dict = field(default_factory=dict)


class Extractor(Protocol):
    backend: str
    model: str
    prompt_version: str

    def extract(self, product: Product) -> list[ExtractedAttribute]: ...


# --------------------------------------------------------------------------------------------- catalog

# Structured feed field -> attribute type (merchant_attributes keys are mapped by a seed).
CATALOG_FIELD_TYPES = {
    "article_type": "article_type", "base_colour": "colour", "gender": "gender",
    "usage": "occasion", "season": "season", "sub_category": "category",
}
TEXT_MINED_TYPES = ("colour", "pattern", "material", "sleeve", "neckline", "fit", "length", "closure")
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def phrase_key(text: str) -> str:
    """Lower-case words joined by single spaces (hyphens kept): the unit of text matching."""
    return " ".join(_WORD.findall(text.lower()))


class CatalogExtractor:
    backend = "catalog"
    model = "merchant-fields"
    prompt_version = "catalog-v1"

    def __init__(self, merchant_key_types: dict[str, str], lexicon: dict[str, tuple[str, str]] | None = None,
                 max_phrase_words: int = 3):
        """`lexicon`: phrase_key -> (type, value) of known attribute values to find in text."""
        self.merchant_key_types = merchant_key_types
        self.lexicon = lexicon or {}
        self.max_phrase_words = max_phrase_words

    def extract(self, product: Product) -> list[ExtractedAttribute]:
        found: dict[tuple[str, str], ExtractedAttribute] = {}

        def add(type_: str, value, confidence: float):
            if value is None or not str(value).strip():
                return
            item = ExtractedAttribute(type=type_, value=str(value)[:60], confidence=confidence)
            key = (item.type, item.value.lower())
            if key not in found or found[key].confidence < confidence:
                found[key] = item

        for field_name, type_ in CATALOG_FIELD_TYPES.items():
            add(type_, product.fields.get(field_name), 1.0)
        for key, value in (product.merchant_attributes or {}).items():
            type_ = self.merchant_key_types.get(key)
            if type_:
                add(type_, value, 0.9)
        for type_, value in self.mine(product.title):
            add(type_, value, 0.7)
        # Descriptions are long and generic ("regular", "long", "fabric"): only multi-word phrases.
        for type_, value in self.mine(product.description, min_words=2):
            add(type_, value, 0.5)
        return list(found.values())

    def mine(self, text: str | None, min_words: int = 1) -> Iterable[tuple[str, str]]:
        if not text or not self.lexicon:
            return
        words = phrase_key(text).split()
        for n in range(self.max_phrase_words, min_words - 1, -1):
            for i in range(len(words) - n + 1):
                hit = self.lexicon.get(" ".join(words[i:i + n]))
                if hit:
                    yield hit


# ---------------------------------------------------------------------------------------------- openai

SYSTEM_PROMPT = (
    "You label fashion products for an online catalog. From the photo and the text, list the "
    "product's attributes. Use only these types: " + ", ".join(ATTRIBUTE_TYPES) + ". Values are "
    "short shopping phrases (1-4 words, e.g. 'navy blue', 'round neck', 'slim fit'). Give a "
    "confidence between 0 and 1. Leave out anything you cannot see or read."
)


def image_data_url(path: str) -> str | None:
    """The photo as a data URL with its real media type (Pillow reads the header, not the name);
    None for a file the vision API would not take."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            media_type = Image.MIME.get(image.format or "")
    except (OSError, UnidentifiedImageError):
        return None
    if media_type not in ("image/jpeg", "image/png", "image/webp", "image/gif"):
        return None
    with open(path, "rb") as handle:
        return f"data:{media_type};base64,{base64.b64encode(handle.read()).decode('ascii')}"


class OpenAIExtractor:
    """Vision + text extraction through any OpenAI-compatible chat endpoint.

    Structured output through the client's `chat.completions.parse` with the pydantic model as
    response_format (the JSON schema is derived from ExtractionResult, not written beside it).
    Transport errors are retried by the client only (ml/llm_client.py) and counted by the run's
    circuit breaker; answers that break the schema are asked again, at most `schema_attempts` times.
    """

    backend = "openai"
    prompt_version = "openai-v1"

    def __init__(self, model: str, base_url: str | None = None, timeout: float | None = None,
                 max_retries: int | None = None, schema_attempts: int = 3, endpoint=None, breaker=None):
        from ml.llm_client import LLMEndpoint, LLMSettings

        self.model = model
        # The key comes from OPENAI_API_KEY only; it is never stored on this object or logged.
        self.endpoint = endpoint or LLMEndpoint(
            base_url, settings=LLMSettings.from_env(timeout=timeout, max_retries=max_retries), breaker=breaker)
        self._extract = retry(retry=retry_if_exception_type(SchemaError), stop=stop_after_attempt(schema_attempts),
                              reraise=True)(self._extract_once)  # no wait: the server is up, only the answer was bad

    @property
    def calls(self) -> int:
        return self.endpoint.calls

    def messages(self, product: Product) -> list[dict]:
        text = f"Title: {product.title}\nDescription: {product.description or '(none)'}"
        content: list[dict] = [{"type": "text", "text": text}]
        url = image_data_url(product.image_path) if product.image_path else None
        if url:
            content.append({"type": "image_url", "image_url": {"url": url}})
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]

    def _ask(self, client, messages):
        from openai import ContentFilterFinishReasonError, LengthFinishReasonError
        from pydantic import ValidationError

        from ml.llm_client import InvalidResponseError

        raw = client.chat.completions.with_raw_response.parse(model=self.model, messages=messages, temperature=0,
                                                              response_format=ExtractionResult)
        body = raw.http_response.json()  # not JSON: InvalidResponseError (ml/llm_client.py)
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise InvalidResponseError("response is not a chat completion (no choices list)")
        try:
            completion = raw.parse()
        except (ValidationError, LengthFinishReasonError, ContentFilterFinishReasonError) as exc:
            raise SchemaError(f"answer does not match the attribute schema: {type(exc).__name__}: "
                              f"{str(exc)[:300]}") from None
        if not completion.choices:
            raise SchemaError("response has no choices")
        message = completion.choices[0].message
        if message.parsed is None:
            raise SchemaError(f"no parsed answer (refusal: {message.refusal!r})")
        return message.parsed.attributes

    def _extract_once(self, product: Product) -> list[ExtractedAttribute]:
        return self.endpoint.call(self._ask, self.messages(product))

    def extract(self, product: Product) -> list[ExtractedAttribute]:
        return self._extract(product)


# ----------------------------------------------------------------------------------------------- local

# Few-shot examples for the base model, written from real catalog products. Changing them changes
# the prompt version, which invalidates cached responses.
FEW_SHOT = [
    ("Nike Men Blue T20 Indian Cricket Jersey",
     "Blue cotton jersey with a ribbed V-neck and spread collar, short sleeves, tri-colour paneling",
     [("article_type", "jersey"), ("colour", "blue"), ("material", "cotton"), ("neckline", "v-neck"),
      ("sleeve", "short sleeves"), ("gender", "men"), ("occasion", "sports")]),
    ("Puma Women Black Running Shoes",
     "Black mesh running shoes with lace-up closure and a cushioned sole",
     [("article_type", "running shoes"), ("colour", "black"), ("material", "mesh"), ("closure", "lace-up"),
      ("gender", "women"), ("sport", "running")]),
    ("Jealous 21 Women Red Floral Print Top",
     "Red printed woven top with a floral print, round neck and sleeveless, regular fit",
     [("article_type", "top"), ("colour", "red"), ("pattern", "floral"), ("neckline", "round neck"),
      ("sleeve", "sleeveless"), ("fit", "regular fit"), ("gender", "women")]),
]
LINE = re.compile(r"^\s*([a-z_ ]+?)\s*:\s*(.+?)\s*$")


def few_shot_prompt(product: Product, max_description_chars: int = 300) -> str:
    def block(title, description, attrs=None):
        text = f"Product: {title}\nDescription: {description}\nAttributes:\n"
        if attrs is not None:
            text += "".join(f"{t}: {v}\n" for t, v in attrs) + "END\n\n"
        return text

    head = ("Attributes of fashion products, one 'type: value' per line. Types: "
            + ", ".join(ATTRIBUTE_TYPES) + ".\n\n")
    description = (product.description or "")[:max_description_chars]
    return head + "".join(block(*example) for example in FEW_SHOT) + block(product.title, description)


class LocalLLMExtractor:
    """Few-shot completion against the embedded llama.cpp server (or any completions endpoint).
    Calls go through ml/llm_client.py: the client's retries, the run's circuit breaker, and a
    restart of the server when it crashed."""

    backend = "local"
    prompt_version = "local-fewshot-v2"

    def __init__(self, base_url: str, model: str, timeout: float | None = None, max_retries: int | None = None,
                 max_tokens: int = 96, server=None, endpoint=None, breaker=None):
        from ml.llm_client import LLMEndpoint, LLMSettings

        self.model = model
        self.server = server  # a LlamaServer to restart if it crashes
        self.endpoint = endpoint or LLMEndpoint(
            base_url, api_key=os.environ.get("PINLANDING_LOCAL_LLM_KEY", "local"),
            settings=LLMSettings.from_env(timeout=timeout, max_retries=max_retries), breaker=breaker, server=server)
        self.max_tokens = max_tokens

    @property
    def calls(self) -> int:
        return self.endpoint.calls

    def _complete(self, client, product: Product) -> str:
        from ml.llm_client import answer_text

        response = client.completions.create(
            model=self.model, prompt=few_shot_prompt(product), max_tokens=self.max_tokens,
            temperature=0, stop=["END", "\n\n", "Product:"],
        )
        return answer_text(response)

    def extract(self, product: Product) -> list[ExtractedAttribute]:
        return parse_lines(self.endpoint.call(self._complete, product), product)


GROUNDED, UNGROUNDED = 0.8, 0.3


def grounding_confidence(value: str, product: Product | None) -> float:
    """Confidence for a base model's answer (it reports none, and token log-probabilities over
    Gemma's 262k vocabulary cost ~25x the call): high when every word of the value occurs in the
    product's text, low when the model may have copied it from the few-shot examples."""
    if product is None:
        return 0.5
    text = set(phrase_key(f"{product.title} {product.description or ''}").split())
    words = phrase_key(value).split()
    stems = {singularize(w) for w in text}
    return GROUNDED if words and all(w in text or singularize(w) in stems for w in words) else UNGROUNDED


def parse_lines(text: str, product: Product | None = None) -> list[ExtractedAttribute]:
    """`type: value` lines -> attributes; lines with unknown types or bad values are skipped."""
    items, seen = [], set()
    for line in text.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        type_ = match.group(1).strip().replace(" ", "_")
        try:
            item = ExtractedAttribute(type=type_, value=match.group(2),
                                      confidence=grounding_confidence(match.group(2), product))
        except ValueError:
            continue
        key = (item.type, item.value.lower())
        if key not in seen:
            seen.add(key)
            items.append(item)
    return items


_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-\*\.]{6,}")


def redact(text: str) -> str:
    """Remove API keys from text bound for logs or tables (provider errors may echo them)."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        text = text.replace(key, "***")
    return _KEY_PATTERN.sub("sk-***", text)
