"""Key templates: render, exact match, SCAN glob escaping, and overlap between namespaces."""

from __future__ import annotations

import fnmatch

import pytest

from cachectl.policy.template import (
    KeyParamError,
    KeyTemplate,
    TemplateSyntaxError,
    escape_glob,
    hash_value,
    versioned_source,
)


def test_render_with_prefix() -> None:
    t = KeyTemplate("product:{id}", "shop")
    assert t.render({"id": 42}) == "shop:product:42"
    assert t.placeholders == ("id",)
    assert t.literal_prefix == "shop:product:"  # every key starts with this text


def test_render_refuses_missing_empty_and_colon_values() -> None:
    t = KeyTemplate("price:{sku}:{currency}")
    with pytest.raises(KeyParamError, match="currency"):
        t.render({"sku": "A1"})
    with pytest.raises(KeyParamError, match="cannot be one key segment"):
        t.render({"sku": "a:b", "currency": "EUR"})
    with pytest.raises(KeyParamError, match="cannot be one key segment"):
        t.render({"sku": "", "currency": "EUR"})
    with pytest.raises(KeyParamError, match="string or a number"):
        t.render({"sku": None, "currency": "EUR"})


def test_hash_placeholder_stores_a_stable_digest() -> None:
    t = KeyTemplate("search:{query:hash}:{page}")
    key = t.render({"query": "red shoes: size 42", "page": 1})
    assert key == f"search:{hash_value('red shoes: size 42')}:1"
    assert len(key.split(":")[1]) == 16
    assert t.match(key) == {"query": hash_value("red shoes: size 42"), "page": "1"}


def test_match_is_exact_per_segment() -> None:
    t = KeyTemplate("product:{id}", "shop")
    assert t.match("shop:product:42") == {"id": "42"}
    assert t.match("shop:product:reviews:42") is None
    assert t.match("shop:product:") is None
    assert t.match("shop:products:42") is None
    assert t.match("xshop:product:42") is None


def test_affixes_around_a_placeholder() -> None:
    t = KeyTemplate("feed:v{n}.json")
    assert t.render({"n": 3}) == "feed:v3.json"
    assert t.match(b"feed:v3.json") == {"n": "3"}
    assert t.match(b"feed:v.json") is None
    assert t.glob == "feed:v*.json"


def test_non_utf8_keys_match_by_bytes() -> None:
    t = KeyTemplate("blob:{id}")
    assert t.matches(b"blob:\xff\xfe")
    assert t.match(b"blob:\xff\xfe") == {"id": "\\xff\\xfe"}
    assert not t.matches(b"blob:\xff:\xfe")
    assert t.match("blob:\udcff") == {"id": "\\xff"}  # surrogate-escaped str keys too


@pytest.mark.parametrize(("source", "glob"), [
    ("product:{id}", "product:*"),
    ("report[daily]:{id}", "report\\[daily\\]:*"),
    ("a*b?:{id}", "a\\*b\\?:*"),
    ("back\\slash:{id}", "back\\\\slash:*"),
])
def test_glob_escapes_literal_glob_characters(source: str, glob: str) -> None:
    t = KeyTemplate(source)
    assert t.glob == glob
    assert t.has_glob_characters is ("{" in source and any(c in source for c in "*?[]\\"))


def test_escaped_glob_matches_the_literal_key_only() -> None:
    # Redis's glob and fnmatch agree on \\-escapes for these characters
    t = KeyTemplate("a*b:{id}")
    key = t.render({"id": "1"})
    assert key == "a*b:1"
    assert t.regex.fullmatch(b"axxb:1") is None
    assert escape_glob("a*b") == "a\\*b"
    assert fnmatch.fnmatchcase("a*b:1", "a[*]b:*")


@pytest.mark.parametrize(("source", "code"), [
    ("product:{id", "CP201"), ("product:id}", "CP201"), ("product:}{", "CP201"),
    ("product:{}", "CP202"), ("product:{ }", "CP202"), ("product:{1x}", "CP202"),
    ("p:{id}:{id}", "CP203"), ("p::{id}", "CP206"), ("p:{a}{b}", "CP206"), (":p", "CP206"),
    ("search:{q:md5}", "CP207"),
])
def test_syntax_errors_carry_their_rule(source: str, code: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        KeyTemplate(source)
    assert info.value.code == code


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ("user:{id}", "user:{uid}", True),
    ("product:{id}", "product:reviews:{id}", False),      # nested prefix, more segments
    ("product:{id}", "product:reviews", True),            # a literal fills the placeholder
    ("product:{id}:reviews", "product:{id}:photos", False),
    ("product:v{n}", "product:{id}", True),
    ("product:v{n}", "product:w{n}", False),
    ("img:{id}.png", "img:{id}.jpg", False),
    ("img:{id}.png", "img:{name}", True),
    ("img:a{x}", "img:{y}b", True),                       # "ab", "a1b"... fit both
    ("search:{q:hash}", "search:0123456789abcdef", True),
    ("search:{q:hash}", "search:not-hex", False),
    ("a*:{id}", "a?:{id}", False),                        # glob characters are literals
    ("cart:{id}", "CART:{id}", False),
])
def test_can_overlap(a: str, b: str, overlap: bool) -> None:
    ta, tb = KeyTemplate(a, "shop"), KeyTemplate(b, "shop")
    assert ta.can_overlap(tb) is overlap
    assert tb.can_overlap(ta) is overlap


def test_overlap_agrees_with_matching_a_witness_key() -> None:
    a, b = KeyTemplate("product:v{n}"), KeyTemplate("product:{id}")
    assert a.matches(b"product:v2") and b.matches(b"product:v2")


@pytest.mark.parametrize(("source", "version", "want"), [
    ("product:{id}", 2, "product:v2:{id}"),               # after the first literal segment
    ("{tenant}:product:{id}", 3, "{tenant}:product:v3:{id}"),
    ("search:{q:hash}:page", 1, "search:v1:{q:hash}:page"),
    ("product:v{version}:{id}", 2, "product:v2:{id}"),     # the marker takes the bare number
    ("product:{id}", None, "product:{id}"),
    ("product:{version}:{id}", None, "product:{version}:{id}"),  # no version: a placeholder
])
def test_versioned_source_puts_the_version_in(source: str, version: int | None,
                                              want: str) -> None:
    assert versioned_source(source, version) == want


def test_versioned_source_refuses_what_has_no_place_for_it() -> None:
    with pytest.raises(TemplateSyntaxError) as no_place:
        versioned_source("{id}", 2)
    assert no_place.value.code == "CP211"
    with pytest.raises(TemplateSyntaxError) as twice:
        versioned_source("a:{version}:{version}", 2)
    assert twice.value.code == "CP203"


def test_two_versions_never_share_a_key() -> None:
    v2 = KeyTemplate(versioned_source("product:{id}", 2), "shop")
    v3 = KeyTemplate(versioned_source("product:{id}", 3), "shop")
    assert v2.render({"id": 7}) == "shop:product:v2:7"
    assert not v2.can_overlap(v3)
    assert v3.match(b"shop:product:v2:7") is None
