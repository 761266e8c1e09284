"""The loader: positions, interpolation, duplicate keys, resolution, and never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachectl.errors import PolicyError
from cachectl.policy import load_policy, parse_policy, read_policy
from cachectl.policy.loader import LoadResult

REPO = Path(__file__).resolve().parents[2]

POLICY = """\
version: 1
redis:
  url: ${REDIS_URL:-redis://localhost:6379/0}
  key_prefix: shop
defaults:
  ttl: 10m
  jitter: 10%
namespaces:
  product:
    key: "product:{id}"
    ttl: 1h
    stale: 10m
    tags: [catalog]
  cart: {key: "cart:{user_id}", stale_if_error: 1m}
"""


def codes(result: LoadResult) -> list[str]:
    return [d.code for d in result.diagnostics]


def test_resolves_defaults_and_units() -> None:
    result = parse_policy(POLICY, "p.yaml", {})
    assert codes(result) == []
    policy = result.policy
    assert policy is not None
    product, cart = policy.namespace("product"), policy.namespace("cart")
    assert (product.ttl_ms, product.stale_ms, product.stale_if_error_ms) == (3_600_000, 600_000, 600_000)
    assert product.jitter == pytest.approx(0.1)
    assert (cart.ttl_ms, cart.stale_ms, cart.stale_if_error_ms, cart.grace_ms) == (600_000, 0, 60_000, 60_000)
    assert product.key(id=7) == "shop:product:7"
    assert policy.internal_prefix == "shop:cachectl"
    assert [ns.name for ns in policy.with_tag("catalog")] == ["product"]


def test_spans_are_one_based_line_and_column() -> None:
    result = parse_policy(POLICY, "p.yaml", {})
    assert result.policy is not None
    spans = result.policy.spans
    assert (spans.value("namespaces", "product", "ttl").line,
            spans.value("namespaces", "product", "ttl").col) == (11, 10)
    assert (spans.key("namespaces", "cart").line, spans.key("namespaces", "cart").col) == (14, 3)
    assert spans.value("namespaces", "cart", "stale_if_error").col == 49
    assert spans.value("namespaces", "product", "tags", 0).col == 12
    # an absent node falls back to its nearest ancestor
    assert spans.value("namespaces", "cart", "ttl") == spans.value("namespaces", "cart")


def test_interpolation_uses_the_given_env_only() -> None:
    result = parse_policy(POLICY, "p.yaml", {"REDIS_URL": "redis://cache:6380/2"})
    assert result.policy is not None and result.policy.redis_url == "redis://cache:6380/2"
    default = parse_policy(POLICY, "p.yaml", {})
    assert default.policy is not None and default.policy.redis_url == "redis://localhost:6379/0"
    assert default.spans is not None
    assert default.spans.raw[("redis", "url")] == "${REDIS_URL:-redis://localhost:6379/0}"


def test_interpolation_forms() -> None:
    text = 'version: 1\nredis: {url: "a${X}b$${Y}c${Z:-}d"}\nnamespaces: {}\n'
    result = parse_policy(text, "p.yaml", {"X": "1"})
    assert result.spec is not None and result.spec.redis.url == "a1b${Y}cd"
    unset = parse_policy(text.replace("${X}", "${UNSET_X}"), "p.yaml", {})
    assert [(d.code, d.span.line, d.span.col) for d in unset.diagnostics] == [("CP401", 2, 14)]
    assert "UNSET_X" in unset.diagnostics[0].message


def test_interpolation_never_applies_to_keys_or_evaluates_anything() -> None:
    text = ('version: 1\nnamespaces:\n  ${NAME}: {key: "a:{id}", ttl: 5m, '
            'description: "$(echo hi) `id`"}\n')
    result = parse_policy(text, "p.yaml", {"NAME": "x"})
    assert codes(result) == ["CP010"]  # the mapping key stays literally "${NAME}"
    assert result.spec is not None
    assert result.spec.namespaces["${NAME}"].description == "$(echo hi) `id`"


def test_duplicate_keys_are_errors_with_both_lines() -> None:
    text = "version: 1\nnamespaces:\n  a: {key: 'a:{id}', ttl: 1m}\n  a: {key: 'b:{id}', ttl: 1m}\n"
    result = parse_policy(text, "p.yaml", {})
    (dup,) = [d for d in result.diagnostics if d.code == "CP002"]
    assert (dup.span.line, dup.span.col) == (4, 3)
    assert "first at line 3" in dup.message
    assert result.policy is not None  # the first one is kept; the error still fails lint
    assert result.policy.namespace("a").template.source == "a:{id}"


def test_unknown_field_has_did_you_mean() -> None:
    result = parse_policy("version: 1\nnamespaces:\n  a: {key: 'a:{id}', tll: 1m}\n", "p", {})
    (d,) = result.diagnostics
    assert d.code == "CP003" and d.hint == "did you mean 'ttl'?"


def test_python_tags_never_construct_objects() -> None:
    text = "version: 1\nnamespaces: !!python/object/apply:os.system ['true']\n"
    result = parse_policy(text, "p", {})
    assert "CP009" in codes(result)
    assert result.policy is None


def test_load_policy_raises_policy_error_with_the_first_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nnamespaces:\n  a: {key: 'a:{id', ttl: 1m}\n")
    with pytest.raises(PolicyError, match=r"bad.yaml:3:12: CP201") as info:
        load_policy(path)
    assert info.value.diagnostics[0].code == "CP201"
    with pytest.raises(PolicyError, match="does not exist"):
        read_policy(tmp_path / "missing.yaml", {})
    with pytest.raises(PolicyError, match="folder"):
        read_policy(tmp_path, {})


def test_example_policies_load() -> None:
    for name in ("ecommerce.yaml", "minimal.yaml"):
        policy = load_policy(REPO / "policies" / name, {})
        assert policy.namespaces
    shop = load_policy(REPO / "policies" / "ecommerce.yaml", {})
    assert shop.namespace("product").critical and shop.key_prefix == "shop"


YAMLISH = st.lists(
    st.sampled_from([*"abcdefgkty{}[]:,-&*!|>'\"#%@`$\\ \t\n0123456789.",
                     "version: 1\n", "namespaces:\n", "  ", "key: ", "ttl: ", "${X}",
                     "<<: ", "!!python/object ", "&a ", "*a", "---\n", "\ufeff",
                     "\x00", "\u2028"]),
    max_size=120,
).map("".join)


def check_result(result: LoadResult) -> None:
    assert isinstance(result, LoadResult)
    assert result.policy is not None or result.diagnostics
    for d in result.diagnostics:
        assert d.span.line >= 1 and d.span.col >= 1
        assert d.rule.code == d.code


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_random_yamlish_text_never_raises(text: str) -> None:
    check_result(parse_policy(text, "fuzz.yaml", {"X": "1"}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    check_result(parse_policy(data, "fuzz.yaml", {}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(
    st.sampled_from(["key", "ttl", "stale", "stale_if_error", "jitter", "hit_rate", "tags",
                     "critical", "max_value_bytes", "early_refresh", "warm"]),
    st.one_of(st.text(max_size=12), st.integers(-5, 10**6), st.floats(allow_nan=True),
              st.booleans(), st.none(), st.lists(st.text(max_size=4), max_size=3)),
))
def test_random_namespace_fields_never_raise(fields: dict[str, object]) -> None:
    import json

    doc = {"version": 1, "namespaces": {"ns": fields}}
    check_result(parse_policy(json.dumps(doc), "fuzz.yaml", {}))
