"""Word rules shared by every stage that compares attribute words (one definition each)."""

from __future__ import annotations

import re


def singularize(word: str) -> str:
    """The project's one singular rule, the same as the SQL macro `singularize_last_word`
    (macros/normalize_attribute_value.sql; tests/unit/test_titles.py runs both on one word list):
    "dresses" -> "dress", "accessories" -> "accessory", "shoes" -> "shoe", "dress" stays."""
    if re.search(r"[a-z]{2,}ies$", word):
        return word[:-3] + "y"
    if re.search(r"(ss|sh|ch|x)es$", word):
        return word[:-2]
    if re.search(r"[a-z]{2,}[^aisu]s$", word):
        return word[:-1]
    return word
