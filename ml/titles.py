"""Collection titles: an LLM writes a shopping-page title for an attribute combination, and the title
is validated and scored before it is accepted.

- TitleWriter asks any OpenAI-compatible server. `completion` mode (the default local Gemma-3-270M
  base model) sends a few-shot prompt built from the exemplars seed; `chat` mode (instruction-tuned
  models) sends the same exemplars as a chat and also asks the model to judge the title 1-5.
- validate_title: every attribute expressed (by value or alias), length and casing rules. Semantic
  validity of the combination and duplicate titles across collections are checked in SQL
  (models/collections/), where all collections are visible.
- quality_score: the LLM judge's score where the model can judge (chat mode); otherwise the rubric in
  rubric_quality (a documented, model-based score: MiniLM similarity plus deductions).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field

from ml.text import singularize

PROMPT_TEMPLATE_VERSION = "titles-v1"
HEADER = "Shopping page titles written by a merchandiser from product attributes.\n\n"

# Words a title may add to its attributes without losing quality.
FILLER_WORDS = {"for", "and", "with", "in", "the", "of", "&", "a", "collection", "styles"}
# How genders read in titles ("Men's Shirts"); the rest come from the vocabulary's aliases.
GENDER_FORMS = {"men": ["mens", "man"], "women": ["womens", "woman", "ladies"], "boys": ["boy"],
                "girls": ["girl"], "unisex": []}


@dataclass(frozen=True)
class Attribute:
    attribute_type: str
    value: str
    aliases: tuple[str, ...] = ()


@dataclass
class TitleResult:
    title: str | None
    accepted: bool
    reasons: list[str]
    quality_score: int | None
    attempt: int
    latency_s: float
    judge: str  # 'llm' or 'rubric'
    attempts: list[dict] = field(default_factory=list)
    error: str | None = None  # the call failed (or the last answer was empty): no outcome to cache


def attribute_key(attributes: list[Attribute]) -> str:
    """`type=value` pairs sorted by type and joined with `|` (as collections.attribute_key)."""
    return "|".join(f"{a.attribute_type}={a.value}" for a in sorted(attributes, key=lambda a: a.attribute_type))


def prompt_version(exemplars: list[tuple[str, str]], mode: str = "completion", constrained: bool = False) -> str:
    """Changes whenever the template, the exemplars, the mode or the grammar change, so the title
    cache is invalidated."""
    digest = hashlib.sha256(repr((HEADER, TITLE_ORDER, sorted(exemplars))).encode()).hexdigest()[:8]
    return (f"{PROMPT_TEMPLATE_VERSION}-{digest}" + ("" if mode == "completion" else "-chat")
            + (f"-{GRAMMAR_VERSION}" if constrained else ""))


# The order words take in a title ("Women's Summer Blue Printed Cotton Slim Fit ... Kurtas"): the
# prompt lists attributes in this order, so a small base model mostly has to copy them.
TITLE_ORDER = ["gender", "season", "occasion", "colour", "pattern", "material", "fit", "sleeve", "neckline",
               "length", "closure", "sport", "style", "category", "article_type"]


def prompt_attributes(key: str) -> str:
    pairs = [p.split("=", 1) for p in key.split("|")]
    rank = {t: i for i, t in enumerate(TITLE_ORDER)}
    pairs.sort(key=lambda p: rank.get(p[0], len(rank)))
    return "; ".join(f"{t.replace('_', ' ')}: {v}" for t, v in pairs)


def few_shot_prompt(key: str, exemplars: list[tuple[str, str]]) -> str:
    """Few-shot completion prompt. Only its last line differs between collections, so llama.cpp
    reuses the evaluated prefix (the exemplars) from one request to the next."""
    body = "".join(f"Attributes: {prompt_attributes(attrs)}\nTitle: {title}\n\n" for attrs, title in exemplars)
    return f"{HEADER}{body}Attributes: {prompt_attributes(key)}\nTitle:"


# ------------------------------------------------------------------------------------- validation

def _tokens(text: str) -> list[str]:
    """Lower-case word tokens; possessives dropped, hyphens joined ("Men's T-Shirts" -> men tshirts)."""
    text = re.sub(r"['’]s?\b", "", text.lower())
    text = re.sub(r"(?<=\w)-(?=\w)", "", text)
    return re.findall(r"[a-z0-9]+", text)


def _forms(attribute: Attribute) -> list[list[str]]:
    forms = [attribute.value, *attribute.aliases]
    if attribute.attribute_type == "gender":
        forms += GENDER_FORMS.get(attribute.value.lower(), [])
    stems = []
    for form in forms:
        words = [singularize(t) for t in _tokens(form)]
        if words:
            stems.append(words)
            stems.append(["".join(words)])  # "Tshirts" ~ "T Shirts"
    return stems


def expressed(attribute: Attribute, title: str) -> bool:
    """Whether the title mentions the attribute by its value or an alias (inflection-insensitive)."""
    words = [singularize(t) for t in _tokens(title)]
    joined = "".join(words)
    for form in _forms(attribute):
        n = len(form)
        if any(words[i:i + n] == form for i in range(len(words) - n + 1)):
            return True
        if n == 1 and len(form[0]) >= 4 and form[0] in joined:  # compound: "tshirt" in "tshirts"
            return True
    return False


def validate_title(title: str | None, attributes: list[Attribute], min_chars: int = 4,
                   max_chars: int = 70) -> list[str]:
    """Reasons the title is not acceptable (empty list = valid)."""
    if not title or not title.strip():
        return ["empty title"]
    reasons = []
    if len(title) < min_chars:
        reasons.append(f"shorter than {min_chars} characters")
    if len(title) > max_chars:
        reasons.append(f"longer than {max_chars} characters")
    if title != title.strip() or "\n" in title or "  " in title:
        reasons.append("stray whitespace")
    if re.search(r"[\"<>{}\[\]|#*_=:;!?]|\.$", title):
        reasons.append("markup or punctuation")
    letters = [c for c in title if c.isalpha()]
    if letters and (title.isupper() and len(letters) > 4):
        reasons.append("all capitals")
    words = re.findall(r"[A-Za-z][\w'’-]*", title)
    lower_words = [w for w in words if w[0].islower() and w.lower() not in FILLER_WORDS]
    if lower_words:
        reasons.append("not title case: " + ", ".join(lower_words[:3]))
    missing = [f"{a.attribute_type}={a.value}" for a in attributes if not expressed(a, title)]
    if missing:
        reasons.append("missing attribute: " + ", ".join(missing))
    return reasons


# ---------------------------------------------------------------------------------------- grammar

GRAMMAR_VERSION = "grammar3"
HEAD_TYPES = ("category", "article_type")   # the noun a title ends on (the narrower one last)
POST_TYPES = {"sleeve", "neckline", "closure"}  # facets that read after the noun: "with Full Sleeves"
POST_CONNECTIVES = ("with", "and", "in")
MAX_PERMUTED = 4        # modifiers in any order up to 4 of them (24 orders); beyond, no grammar
_UNSAFE_FORM = re.compile(r"[\"<>{}\[\]|#*_=:;!?\\]|[^\x20-\x7e\u00a0-\u024f\u2019]")


def _title_case(text: str) -> str:
    return re.sub(r"(^|[\s-])([a-z])", lambda m: m.group(1) + m.group(2).upper(), text.strip())


def _number_forms(noun: str) -> list[str]:
    """The other grammatical number of a title-case noun phrase's last word ("Dress" -> "Dresses",
    "Tshirts" -> "Tshirt"); validate_title's stemming decides whether a form still counts."""
    head, _, last = noun.rpartition(" ")
    lower = last.lower()
    if lower.endswith("ies") and len(lower) > 4:
        other = last[:-3] + "y"
    elif re.search(r"(ss|x|z|ch|sh)es$", lower):
        other = last[:-2]
    elif lower.endswith("s") and not lower.endswith("ss"):
        other = last[:-1]
    elif re.search(r"[^aeiou]y$", lower):
        other = last[:-1] + "ies"
    elif re.search(r"(s|x|z|ch|sh)$", lower):
        other = last + "es"
    else:
        other = last + "s"
    return [f"{head} {other}".strip()] if len(other) > 1 else []


def title_forms(attribute: Attribute, limit: int = 8) -> list[str]:
    """How the attribute may be written in a title: its value and aliases in title case, the noun
    (article type, category) singular and plural, and possessive genders ("Men's"). Only forms that validate_title accepts as
    expressing the attribute, and none with characters a title may not contain."""
    bases = [attribute.value, *attribute.aliases]
    if attribute.attribute_type == "gender":
        bases += GENDER_FORMS.get(attribute.value.lower(), [])
        value = attribute.value.strip()
        if value.lower() in ("men", "women", "boys", "girls"):
            bases += [value + ("'" if value.lower().endswith("s") else "'s")]
    forms: list[str] = []
    for base in bases:
        form = _title_case(re.sub(r"\s+", " ", base))
        variants = [form]
        if attribute.attribute_type in HEAD_TYPES:  # nouns inflect; "Reds", "Printeds" do not exist
            variants += _number_forms(form)
        for v in variants:
            if v and v not in forms and not _UNSAFE_FORM.search(v) and expressed(attribute, v):
                forms.append(v)
    return forms[:limit]


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def title_grammar(attributes: list[Attribute]) -> str | None:
    """A llama.cpp (GBNF) grammar for titles made of every attribute phrase, shaped like an English
    noun phrase: gender first ("Men's"), the other modifiers in any order, the product noun
    (article type or category) next, and the facets that read as "with ..." after it ("Kurtas with
    Three-Quarter Sleeves"). The model chooses the modifiers' order, each phrase's form (value or
    alias, singular or plural) and the connective; it cannot drop, misspell or add a facet (no free
    words: a small base model pads titles with wrong colours and brands when it may). None when an
    attribute has no writable form: the caller goes unconstrained and validation decides."""
    import itertools

    forms = {i: title_forms(a) for i, a in enumerate(attributes)}
    if not attributes or any(not f for f in forms.values()):
        return None
    heads = [i for i, a in enumerate(attributes) if a.attribute_type in HEAD_TYPES]
    head = heads[-1] if heads else None  # with both, the article type (the narrower noun) ends the phrase
    genders = [i for i, a in enumerate(attributes) if a.attribute_type == "gender" and i != head]
    post = [i for i, a in enumerate(attributes) if a.attribute_type in POST_TYPES and i != head] if head is not None else []
    pre = [i for i in range(len(attributes)) if i != head and i not in genders and i not in post]
    if len(pre) > MAX_PERMUTED or len(post) > MAX_PERMUTED:
        return None

    def alternatives(name: str, orders) -> str:
        return f"{name} ::= " + " | ".join(" \" \" ".join(f"a{i}" for i in order) for order in orders) if orders else ""

    # gender, modifiers and head are separated by single spaces; post facets by a connective
    body = [*[f"a{g}" for g in genders], *(["pre"] if pre else []), *([f"a{head}"] if head is not None else [])]
    lines = ["root ::= \" \"? " + " \" \" ".join(body) + (" post" if post else "")]
    if pre:
        lines.append(alternatives("pre", list(itertools.permutations(pre))))
    if post:
        lines.append("post ::= " + " | ".join(
            " ".join(f"join a{i}" for i in order) for order in itertools.permutations(post)))
        lines.append("join ::= \" \" (" + " | ".join(_literal(w) for w in POST_CONNECTIVES) + ") \" \"")
    lines += [f"a{i} ::= " + " | ".join(_literal(f) for f in fs) for i, fs in forms.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- quality

def rubric_quality(title: str, attributes: list[Attribute], similarity: float | None = None) -> int:
    """1-5 for a valid title, when no LLM judge is available. Starts at 5 and deducts:
    - 1 per content word that comes from no attribute (brand names, claims, hallucinated facets),
      at most 2;
    - 1 when a word is repeated;
    - 1 when the title is longer than 60 characters;
    - 1 when MiniLM's cosine similarity between the title and the plain attribute phrase is below
      0.6, 2 below 0.4 (the title says something else than its attributes).
    """
    attribute_words = {singularize(t) for a in attributes for form in _forms(a) for t in form}
    attribute_words |= {singularize(t) for a in attributes for t in _tokens(a.value)}
    joined_attributes = "".join(sorted(attribute_words))
    content = [singularize(t) for t in _tokens(title) if t not in FILLER_WORDS]
    extra = [t for t in content if t not in attribute_words and t not in joined_attributes]
    score = 5 - min(len(extra), 2)
    if len(content) != len(set(content)):
        score -= 1
    if len(title) > 60:
        score -= 1
    if similarity is not None:
        score -= 2 if similarity < 0.4 else 1 if similarity < 0.6 else 0
    return max(score, 1)


def title_similarity(titles: list[str], phrases: list[str]) -> list[float]:
    """Cosine similarity of each title to its attribute phrase (offline MiniLM)."""
    from ml.embeddings import embed

    return [float(x) for x in (embed(titles) * embed(phrases)).sum(axis=1)]


# ----------------------------------------------------------------------------------------- writer

class TitleWriter:
    """Writes and judges titles through an OpenAI-compatible server (`completion` or `chat` mode).

    Calls go through ml/llm_client.py: the openai client's retries (honouring Retry-After) and
    nothing stacked on them, a deadline per request, and the run's circuit breaker. write() never
    raises for the endpoint: a failed call ends the collection's attempts with an `error` attempt,
    which is not final, so the next run asks again."""

    def __init__(self, base_url: str | None, model: str, exemplars: list[tuple[str, str]], mode: str = "completion",
                 api_key: str | None = None, timeout: float | None = None, max_retries: int | None = None,
                 max_tokens: int = 24, server=None, endpoint=None, breaker=None, constrained: bool = False):
        from ml.llm_client import LLMEndpoint, LLMSettings

        if mode not in ("completion", "chat"):
            raise ValueError(f"mode must be completion or chat, got {mode!r}")
        self.model, self.mode, self.exemplars = model, mode, exemplars
        self.max_tokens = max_tokens
        # the key comes from the environment (OPENAI_API_KEY) unless given; never stored in tables
        self.endpoint = endpoint or LLMEndpoint(
            base_url, api_key, settings=LLMSettings.from_env(timeout=timeout, max_retries=max_retries),
            breaker=breaker, server=server)
        # constrained: each request carries title_grammar (llama.cpp's `grammar` field, completion mode)
        self.constrained = constrained and mode == "completion"
        self.prompt_version = prompt_version(exemplars, mode, self.constrained)

    @property
    def calls(self) -> int:
        return self.endpoint.calls

    def _ask(self, client, key: str, temperature: float, seed: int, grammar: str | None = None) -> str:
        from ml.llm_client import answer_text

        if self.mode == "completion":
            return answer_text(client.completions.create(
                model=self.model, prompt=few_shot_prompt(key, self.exemplars), max_tokens=self.max_tokens,
                temperature=temperature, seed=seed, stop=["\n", "Attributes:"],
                extra_body={"grammar": grammar} if grammar else None))
        messages = [{"role": "system", "content": "You write short, natural shopping page titles from product "
                     "attributes. Use every attribute. Answer with the title only."}]
        for attrs, title in self.exemplars:
            messages += [{"role": "user", "content": prompt_attributes(attrs)},
                         {"role": "assistant", "content": title}]
        messages.append({"role": "user", "content": prompt_attributes(key)})
        return answer_text(client.chat.completions.create(model=self.model, messages=messages, temperature=temperature,
                                                          seed=seed, max_tokens=self.max_tokens))

    def _call(self, key: str, temperature: float, seed: int, grammar: str | None = None) -> str:
        return self.endpoint.call(self._ask, key, temperature, seed, grammar)

    def _judge(self, client, key: str, title: str) -> str:
        from ml.llm_client import answer_text

        return answer_text(client.chat.completions.create(
            model=self.model, temperature=0, max_tokens=4,
            messages=[{"role": "system", "content": "Rate a shopping page title for the given attributes from 1 "
                       "(poor) to 5 (excellent): natural, accurate, specific, searchable. Answer with one digit."},
                      {"role": "user", "content": f"Attributes: {key}\nTitle: {title}"}]))

    def judge(self, key: str, title: str) -> int | None:
        """The LLM's 1-5 quality score (chat mode only; a base model cannot judge reliably)."""
        from ml.llm_client import EmptyAnswerError

        if self.mode != "chat":
            return None
        try:
            answer = self.endpoint.call(self._judge, key, title)
        except EmptyAnswerError:
            return None  # no verdict: the rubric scores it
        match = re.search(r"[1-5]", answer)
        return int(match.group()) if match else None

    def write(self, attributes: list[Attribute], max_attempts: int = 3, min_quality: int = 4,
              min_chars: int = 4, max_chars: int = 70, similarity=title_similarity) -> TitleResult:
        """Up to max_attempts titles (greedy first, then sampled at rising temperature, same prompt so
        the server's prefix cache holds); the first valid one with quality >= min_quality is
        accepted. Every attempt is returned in .attempts. An empty answer is an `error` attempt
        (nothing to judge or cache) and the next attempt follows; any other failure of the call ends
        the attempts, with the error in .error (not an outcome: the next run asks again)."""
        from openai import OpenAIError

        from ml.llm_client import CircuitOpenError, EmptyAnswerError, InvalidResponseError
        from ml.llm_server import LlamaServerError

        key = attribute_key(attributes)
        phrase = " ".join(a.value for a in attributes)
        grammar = title_grammar(attributes) if self.constrained else None
        attempts = []
        started = time.perf_counter()
        for attempt in range(1, max_attempts + 1):
            t0 = time.perf_counter()
            raw = title = quality = None
            judge = "rubric"
            try:
                raw = self._call(key, temperature=0.0 if attempt == 1 else 0.5 + 0.3 * attempt, seed=attempt,
                                 grammar=grammar)
                title = clean_title(raw)
                reasons = validate_title(title, attributes, min_chars, max_chars)
                if not reasons:
                    quality = self.judge(key, title)
                    if quality is not None:
                        judge = "llm"
                    else:
                        quality = rubric_quality(title, attributes, similarity([title], [phrase])[0] if similarity else None)
                    if quality < min_quality:
                        reasons = [f"quality {quality} below {min_quality}"]
            except EmptyAnswerError as exc:
                attempts.append({"attempt": attempt, "raw": raw, "title": None, "reasons": [], "quality_score": None,
                                 "judge": None, "latency_s": time.perf_counter() - t0,
                                 "error": f"EmptyAnswerError: {exc}"})
                continue
            except (OpenAIError, CircuitOpenError, InvalidResponseError, LlamaServerError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                attempts.append({"attempt": attempt, "raw": raw, "title": title, "reasons": [], "quality_score": None,
                                 "judge": None, "latency_s": time.perf_counter() - t0, "error": error})
                return TitleResult(None, False, [error], None, attempt, time.perf_counter() - started, "rubric",
                                   attempts, error=error)
            attempts.append({"attempt": attempt, "raw": raw, "title": title, "reasons": reasons,
                             "quality_score": quality, "judge": judge, "latency_s": time.perf_counter() - t0,
                             "error": None})
            if not reasons:
                return TitleResult(title, True, [], quality, attempt, time.perf_counter() - started, judge, attempts)
        last = attempts[-1]
        return TitleResult(last["title"], False, [last["error"]] if last["error"] else last["reasons"],
                           last["quality_score"], max_attempts, time.perf_counter() - started, last["judge"] or "rubric",
                           attempts, error=last["error"])


def clean_title(raw: str | None) -> str:
    """The model's first line, without quotes or a leading 'Title:'."""
    line = (raw or "").strip().splitlines()[0] if (raw or "").strip() else ""
    line = re.sub(r"^(title\s*:\s*)", "", line, flags=re.IGNORECASE).strip()
    return line.strip("\"'“”` ").strip()
