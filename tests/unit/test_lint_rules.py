"""Semantic rules one by one, beyond the corpus: variants, non-findings, and plugins."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachectl.lint import lint_paths, lint_source, sources
from cachectl.lint.urls import literal_text


def findings(text: str, base_dir: Path | None = None, env: dict[str, str] | None = None) -> list[str]:
    return [d.code for d in lint_source(text, "p.yaml", env or {}, base_dir)]


def policy(namespaces: str, head: str = "") -> str:
    return f"version: 1\n{head}namespaces:\n{namespaces}"


@pytest.mark.parametrize(("url", "codes"), [
    ("redis://localhost:6379/0", []),
    ("rediss://cache.internal:6380/1", []),
    ("unix:///run/redis.sock", []),
    ("redis://user@localhost:6379/0", []),              # a user name is not a secret
    ("redis://:${PW}@localhost:6379/0", []),
    ("redis://${USER_AND_PW}@localhost/0", []),
    ("http://localhost:6379", ["CP406"]),
    ("redis://localhost:notaport/0", ["CP406"]),
    ("redis:///0", ["CP406"]),
    ("localhost:6379", ["CP406"]),
    ("redis://:s3cret@localhost:6379/0", ["CP407"]),
    ("redis://app:s3cret@localhost:6379/0", ["CP407"]),
    ("${URL:-redis://:s3cret@localhost:6379/0}", ["CP407"]),
    ("redis://app:pre${PW}@localhost/0", []),            # partly from the environment
])
def test_redis_url_rules(url: str, codes: list[str]) -> None:
    text = policy('  a: {key: "a:{id}", ttl: 1m}\n', f'redis: {{url: "{url}"}}\n')
    assert findings(text, env={"PW": "x", "USER_AND_PW": "u:p"}) == codes


def test_secret_messages_never_hold_the_password() -> None:
    text = policy('  a: {key: "a:{id}", ttl: 1m}\n', 'redis: {url: "ftp://u:s3cret@h"}\n')
    for d in lint_source(text, "p.yaml", {}):
        assert "s3cret" not in d.message + (d.hint or "")


def test_literal_text_masks_variables_and_keeps_defaults() -> None:
    assert literal_text("a${X}b${Y:-dflt}c$${Z}") == "a\x00bdfltc${Z}"


def test_stale_equal_to_ttl_is_fine_and_inherited_values_are_judged_once() -> None:
    assert findings(policy('  a: {key: "a:{id}", ttl: 1m, stale: 1m}\n')) == []
    text = policy('  a: {key: "a:{id}"}\n  b: {key: "b:{id}"}\n', "defaults: {ttl: 1m, stale: 2m}\n")
    assert findings(text) == ["CP104"]
    # a namespace that sets its own ttl is judged against the inherited stale
    text = policy('  a: {key: "a:{id}", ttl: 30s}\n', "defaults: {ttl: 1h, stale: 1m}\n")
    assert findings(text) == ["CP104"]


def test_jitter_boundaries() -> None:
    assert findings(policy('  a: {key: "a:{id}", ttl: 1m, jitter: 50%}\n')) == []
    assert findings(policy('  a: {key: "a:{id}", ttl: 1m, jitter: 51%}\n')) == ["CP107"]
    assert findings(policy('  a: {key: "a:{id}", ttl: 1m, jitter: 99%}\n')) == ["CP107"]
    assert findings(policy('  a: {key: "a:{id}", ttl: 1m}\n', "defaults: {jitter: 70%}\n")) == ["CP107"]


def test_threshold_boundaries() -> None:
    ns = '  a: {key: "a:{id}", ttl: 1m}\n'
    assert findings(policy(ns, "thresholds: {hit_rate: 0.9, memory_used_ratio: 1}\n")) == []
    assert findings(policy(ns, "thresholds: {hit_rate: .nan}\n")) == ["CP301"]
    assert findings(policy(ns, "thresholds: {max_stale_ratio: -0.1}\n")) == ["CP301"]
    assert findings(policy(ns, "thresholds: {latency_p99_ms: {cached: .nan}}\n")) == ["CP302"]


@pytest.mark.parametrize(("trace", "codes"), [
    ("{sample: 1%, max_events: 2000000}", []),
    ("{sample: 100%}", []),
    ("{}", []),
    ("{sample: 0}", ["CP301"]),
    ("{sample: 150%}", ["CP301"]),
    ("{sample: -0.5}", ["CP301"]),
    ("{max_events: 0}", ["CP004"]),
    ("{max_events: -5}", ["CP004"]),
    ("{sampel: 1%}", ["CP003"]),
])
def test_trace_section(trace: str, codes: list[str]) -> None:
    ns = '  a: {key: "a:{id}", ttl: 1m}\n'
    assert findings(policy(ns, f"trace: {trace}\n")) == codes
    assert findings(policy(ns, "thresholds: {hit_rate: 100%}\n")) == ["CP303", "CP305"]


def test_overlap_is_reported_once_per_namespace_naming_every_earlier_one() -> None:
    text = policy('  a: {key: "u:{id}", ttl: 1m}\n  b: {key: "u:{x}", ttl: 1m}\n'
                  '  c: {key: "u:me", ttl: 1m}\n')
    diags = [d for d in lint_source(text, "p.yaml", {}) if d.code == "CP205"]
    assert [d.span.line for d in diags] == [4, 5]
    assert "namespace b: key 'u:{x}'" in diags[0].message and "namespace a (" in diags[0].message
    assert diags[1].message.endswith("same keys as namespace a ('u:{id}') and namespace b ('u:{x}')")


def test_a_bad_default_every_namespace_inherits_is_reported_once() -> None:
    text = policy('  a: {key: "a:{id}"}\n  b: {key: "b:{id}"}\n  c: {key: "c:{id}"}\n',
                  "defaults: {ttl: 0s, jitter: 100%}\n")
    diags = lint_source(text, "p.yaml", {})
    assert [(d.code, d.span.line) for d in diags] == [("CP102", 2), ("CP106", 2)]
    assert diags[0].message == "namespace a: ttl must be positive (and 2 more like it)"


def test_overlap_check_is_fast_on_500_namespaces() -> None:
    lines = [f'  ns{i}: {{key: "family{i % 25}:kind{i}:{{id}}:v{i % 3}", ttl: 1m}}' for i in range(500)]
    started = time.perf_counter()
    diags = lint_source(policy("\n".join(lines) + "\n"), "p.yaml", {})
    assert time.perf_counter() - started < 5
    assert diags == ()


def test_glob_characters_in_the_prefix_are_cp209_not_cp204() -> None:
    text = policy('  a: {key: "a:{id}", ttl: 1m}\n', "redis: {key_prefix: 'sh*p'}\n")
    assert findings(text) == ["CP209"]


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    (tmp_path / "rows.jsonl").write_text('\n{"id": 1, "name": "x"}\nnot json\n')
    with gzip.open(tmp_path / "rows.jsonl.gz", "wt") as fh:
        fh.write('{"sku": "A"}\n')
    (tmp_path / "list.json").write_text(json.dumps([{"id": 1}]))
    (tmp_path / "map.json").write_text(json.dumps({"a": {"id": 1}}))
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "semi.csv").write_text("id;name\n1;x\n")
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "scalar.jsonl").write_text("[1, 2]\n")
    (tmp_path / "fake.gz.jsonl.gz").write_bytes(b"not gzip")
    return tmp_path


@pytest.mark.parametrize(("source", "codes"), [
    ("{type: jsonl, path: rows.jsonl}", []),              # blank lines skipped, row 2 never read
    ("{type: jsonl, path: rows.jsonl.gz}", ["CP404"]),    # gzip read; has sku, not id
    ("{type: json, path: list.json}", []),
    ("{type: json, path: map.json}", ["CP404"]),          # an object without items: no rows
    ("{type: json, path: map.json, iterms: a}", ["CP003"]),
    ("{type: csv, path: semi.csv, delimiter: ';', columns: {id: int}}", []),
    ("{type: sql, url: 'postgresql://localhost/shop'}", ["CP005"]),
    ("{type: http}", ["CP005"]),
    ("{type: json, path: map.json, items: a.b}", ["CP404"]),
    ("{type: jsonl, path: empty.jsonl}", []),
    ("{type: csv, path: semi.csv, delimiter: ';'}", []),
    ("{type: csv, path: semi.csv}", ["CP404"]),
    ("{type: json, path: bad.json}", ["CP404"]),
    ("{type: jsonl, path: scalar.jsonl}", ["CP404"]),
    ("{type: jsonl, path: fake.gz.jsonl.gz}", ["CP404"]),
    ("{type: jsonl, path: 42}", ["CP004"]),
    ("{type: sql, url: 'postgresql://localhost/shop', query: 'select 1'}", []),
    ("{type: http, url: 'http://localhost/x'}", []),
    ("{type: Jsonl, path: rows.jsonl}", ["CP403"]),
])
def test_warm_sources(seeds: Path, source: str, codes: list[str]) -> None:
    text = policy(f'  a:\n    key: "a:{{id}}"\n    ttl: 1m\n    warm: {{source: {source}}}\n')
    assert findings(text, seeds) == codes


def test_unknown_type_hint_suggests_the_closest(seeds: Path) -> None:
    text = policy('  a: {key: "a:{id}", ttl: 1m, warm: {source: {type: jsonlines, path: x}}}\n')
    (d,) = lint_source(text, "p.yaml", {}, seeds)
    assert d.code == "CP403" and d.hint == "did you mean 'jsonl'?"


def test_plugin_source_types_from_entry_points_are_known(
        seeds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    class FakeEntryPoint:
        name = "parquet"

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        assert group == "cachectl.sources"
        return [FakeEntryPoint()]

    text = policy('  a: {key: "a:{id}", ttl: 1m, warm: {source: {type: parquet, path: x}}}\n')
    sources.plugin_types.cache_clear()
    try:
        assert findings(text, seeds) == ["CP403"]
        sources.plugin_types.cache_clear()
        monkeypatch.setattr(metadata, "entry_points", entry_points)
        assert findings(text, seeds) == []
    finally:
        sources.plugin_types.cache_clear()


def test_warm_paths_are_relative_to_the_policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf" / "seeds").mkdir(parents=True)
    (tmp_path / "conf" / "seeds" / "a.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "conf" / "p.yaml").write_text(
        policy('  a: {key: "a:{id}", ttl: 1m, warm: {source: {type: jsonl, path: seeds/a.jsonl}}}\n'))
    monkeypatch.chdir(tmp_path)
    report = lint_paths(["conf"], {})
    assert report.diagnostics == ()
    assert report.files == ("conf/p.yaml",)


def test_semantic_rules_still_run_when_one_namespace_fails_to_resolve() -> None:
    text = policy('  a: {key: "a:{id", ttl: 1m}\n  b: {key: "b:{id}", ttl: 1m, stale: 1h}\n')
    assert findings(text) == ["CP201", "CP104"]


_VALUES = st.one_of(st.text(max_size=10), st.integers(-5, 10**9), st.floats(), st.booleans(),
                    st.none(), st.lists(st.integers(0, 3), max_size=2))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    ns=st.dictionaries(st.sampled_from(["key", "ttl", "stale", "stale_if_error", "jitter", "hit_rate",
                                        "max_value_bytes", "warm"]), _VALUES),
    thresholds=st.dictionaries(st.sampled_from(["hit_rate", "critical_hit_rate", "memory_used_ratio",
                                                "max_stale_ratio", "latency_p99_ms"]), _VALUES),
    url=st.one_of(st.none(), st.text(max_size=30)),
    key=st.text(alphabet="ab{}:*?[]\\ \t$-x", max_size=12),
)
def test_rules_never_raise_on_random_documents(
        tmp_path: Path, ns: dict[str, object], thresholds: dict[str, object],
        url: str | None, key: str) -> None:
    ns.setdefault("key", key)
    doc: dict[str, object] = {"version": 1, "thresholds": thresholds,
                              "namespaces": {"a": ns, "b": {"key": key, "ttl": 60}}}
    if url is not None:
        doc["redis"] = {"url": url}
    diags = lint_source(json.dumps(doc), "p.yaml", {}, tmp_path)
    assert all(d.span.line >= 1 for d in diags)
