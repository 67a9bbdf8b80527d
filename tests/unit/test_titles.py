"""Title validation and scoring (ml/titles.py), and the writer against a real llama.cpp server."""

import pytest

from ml.titles import (Attribute, TitleWriter, attribute_key, clean_title, expressed, few_shot_prompt,
                       prompt_version, rubric_quality, validate_title)

MEN_BLUE_TSHIRTS = [Attribute("article_type", "Tshirts", ("t-shirt", "tshirts")), Attribute("gender", "Men"),
                    Attribute("colour", "Blue")]


@pytest.fixture(scope="module")
def llama_server():
    from ml.llm_server import LlamaServer
    from pinlanding.settings import data_dir

    with LlamaServer(data_dir()) as server:
        yield server


EXEMPLARS = [("article_type=Tshirts|colour=Black|gender=Men", "Men's Black T-Shirts"),
             ("article_type=Dresses|length=Maxi", "Maxi Dresses")]


def test_valid_title_expresses_every_attribute_through_inflections_and_aliases():
    assert validate_title("Men's Blue T-Shirts", MEN_BLUE_TSHIRTS) == []
    assert validate_title("Blue Tshirts for Men", MEN_BLUE_TSHIRTS) == []
    assert expressed(Attribute("closure", "Lace-Ups"), "Men's Lace-Up Formal Shoes")
    assert expressed(Attribute("gender", "Women"), "Ladies' Tops")  # how genders read in titles
    assert not expressed(Attribute("colour", "Navy Blue"), "Blue Tops")  # part of a value is not enough
    assert not expressed(Attribute("pattern", "Printed"), "Tops")
    assert expressed(Attribute("pattern", "Printed", ("print",)), "Print Tops")


def test_missing_attribute_is_rejected_with_the_attribute_named():
    reasons = validate_title("Men's T-Shirts", MEN_BLUE_TSHIRTS)
    assert reasons == ["missing attribute: colour=Blue"]


@pytest.mark.parametrize("title, reason", [
    ("", "empty title"),
    ("MEN'S BLUE T-SHIRTS", "all capitals"),
    ("men's blue t-shirts", "not title case"),
    ("Men's Blue T-Shirts!", "markup or punctuation"),
    ("<b>Men's Blue T-Shirts</b>", "markup or punctuation"),
    ("Men's Blue T-Shirts " + "Extra " * 12, "longer than 70 characters"),
])
def test_length_casing_and_markup_rules(title, reason):
    assert any(r.startswith(reason) for r in validate_title(title, MEN_BLUE_TSHIRTS))


def test_rubric_deducts_for_words_from_no_attribute_and_low_similarity():
    assert rubric_quality("Men's Blue T-Shirts", MEN_BLUE_TSHIRTS, similarity=0.9) == 5
    assert rubric_quality("Men's Blue T-Shirts by Nike", MEN_BLUE_TSHIRTS, similarity=0.9) == 3  # "by", "nike"
    assert rubric_quality("Men's Blue T-Shirts", MEN_BLUE_TSHIRTS, similarity=0.3) == 3
    assert rubric_quality("Blue Blue Men's T-Shirts", MEN_BLUE_TSHIRTS, similarity=0.9) == 4


def test_prompt_version_changes_with_exemplars_and_prompt_lists_attributes_in_title_order():
    assert prompt_version(EXEMPLARS) == prompt_version(list(reversed(EXEMPLARS)))
    assert prompt_version(EXEMPLARS) != prompt_version(EXEMPLARS[:1])
    prompt = few_shot_prompt(attribute_key(MEN_BLUE_TSHIRTS), EXEMPLARS)
    assert prompt.endswith("Attributes: gender: Men; colour: Blue; article type: Tshirts\nTitle:")
    assert clean_title(' Title: "Men\'s Blue T-Shirts"\nAttributes: x') == "Men's Blue T-Shirts"


def test_writer_accepts_a_real_gemma_title_and_logs_every_attempt(llama_server):
    from ml.llm_server import MODEL_ALIAS

    writer = TitleWriter(llama_server.base_url, MODEL_ALIAS, EXEMPLARS, api_key="local", server=llama_server)
    result = writer.write([Attribute("article_type", "Dresses"), Attribute("length", "Maxi")],
                          max_attempts=2, similarity=None)
    assert result.accepted, result.attempts
    assert result.title == "Maxi Dresses" and result.quality_score == 5 and result.judge == "rubric"
    assert len(result.attempts) == result.attempt == writer.calls
    # an impossible rule: every attempt is rejected, and all of them are returned
    rejected = writer.write([Attribute("article_type", "Dresses"), Attribute("length", "Maxi")],
                            max_attempts=2, max_chars=5, similarity=None)
    assert not rejected.accepted and len(rejected.attempts) == 2
    assert all("longer than 5 characters" in a["reasons"] for a in rejected.attempts)


def test_title_forms_inflect_the_noun_only_and_drop_unwritable_values():
    from ml.titles import title_forms

    assert title_forms(Attribute("article_type", "Dress")) == ["Dress", "Dresses"]
    assert "T-Shirts" in title_forms(MEN_BLUE_TSHIRTS[0]) and "T-Shirt" in title_forms(MEN_BLUE_TSHIRTS[0])
    assert title_forms(Attribute("colour", "Brown")) == ["Brown"]          # no "Browns"
    assert "Men's" in title_forms(Attribute("gender", "Men"))
    assert title_forms(Attribute("gender", "Unisex")) == ["Unisex"]        # no "Unisex's"
    assert title_forms(Attribute("colour", 'Say "hi" <b>')) == []          # markup never enters a grammar
    for attribute in MEN_BLUE_TSHIRTS:
        assert all(expressed(attribute, form) for form in title_forms(attribute))


def test_title_grammar_holds_every_phrase_and_parses_in_llama_cpp():
    import llama_cpp

    from ml.titles import title_grammar

    attributes = [Attribute("article_type", "Kurtas"), Attribute("gender", "Women"),
                  Attribute("sleeve", "Three-Quarter Sleeves"), Attribute("colour", "Navy Blue"),
                  Attribute("pattern", "Printed")]
    grammar = title_grammar(attributes)
    root = grammar.splitlines()[0]
    assert root == 'root ::= " "? a1 " " pre " " a0 post'                # gender, modifiers, noun, "with ..."
    assert 'pre ::= a3 " " a4 | a4 " " a3' in grammar                     # modifiers in either order
    assert 'join ::= " " ("with" | "and" | "in") " "' in grammar
    assert "[A-Z]" not in grammar                                         # no free words: nothing to hallucinate
    llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)
    assert title_grammar([Attribute("colour", "<b>")]) is None            # unwritable: unconstrained + validation


def test_constrained_writer_keeps_every_attribute_a_free_model_drops(llama_server):
    from ml.llm_server import MODEL_ALIAS

    exemplars = EXEMPLARS + [("article_type=Kurtas|gender=Women|pattern=Printed", "Women's Printed Kurtas")]
    combos = [[Attribute("article_type", "Jeans"), Attribute("fit", "Slim Fit"), Attribute("gender", "Men")],
              [Attribute("article_type", "Handbags"), Attribute("colour", "Brown"), Attribute("material", "Leather")],
              [Attribute("article_type", "Casual Shoes"), Attribute("gender", "Women"), Attribute("season", "Summer")]]
    free = TitleWriter(llama_server.base_url, MODEL_ALIAS, exemplars, api_key="local", server=llama_server)
    constrained = TitleWriter(llama_server.base_url, MODEL_ALIAS, exemplars, api_key="local", server=llama_server,
                              constrained=True)
    assert constrained.prompt_version != free.prompt_version              # cached free titles are not reused
    dropped = 0
    for attributes in combos:
        result = constrained.write(attributes, max_attempts=1, similarity=None)
        assert result.accepted, result.attempts
        assert all(expressed(a, result.title) for a in attributes)
        dropped += not free.write(attributes, max_attempts=1, similarity=None).accepted
    assert dropped >= 1  # the unconstrained base model drops an attribute here (why the grammar exists)


WORDS = ["dresses", "dress", "shoes", "accessories", "watches", "boxes", "tshirts", "jeans", "sleeves",
         "glasses", "bus", "kurtas", "flip flops", "lace-ups", "series", "toys", "ties", "boots", "chinos", "s", ""]


def test_singular_rule_is_the_sql_macro(spark):
    """One plural rule: ml.text.singularize must equal the dbt macro on the same words."""
    from pathlib import Path

    import jinja2

    from ml.text import singularize

    macros = (Path(__file__).resolve().parents[2] / "macros" / "normalize_attribute_value.sql").read_text()
    module = jinja2.Environment(extensions=["jinja2.ext.do"]).from_string(macros).module
    expr = str(module.singularize_last_word("w"))
    rows = spark.createDataFrame([(w,) for w in WORDS], "w string").selectExpr("w", f"{expr} as s").collect()
    assert {r.w: r.s for r in rows} == {w: singularize(w) for w in WORDS}
    assert singularize("shoes") == "shoe" and singularize("dresses") == "dress" and singularize("dress") == "dress"
