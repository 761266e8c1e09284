"""Warm sources read rows (or BadRows with a reason) and name each row's place; no Redis here."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachectl.errors import SourceError
from cachectl.policy.template import KeyParamError, KeyTemplate
from cachectl.warm import sources
from cachectl.warm.core import encode_value
from cachectl.warm.loop import key_renderer
from cachectl.warm.sources import BadRow, SourceContext, open_source


def ctx(tmp_path: Path, env: dict[str, str] | None = None) -> SourceContext:
    return SourceContext("product", tmp_path, env or {})


def read(kind: str, options: dict[str, Any], tmp_path: Path) -> list[tuple[int, Any]]:
    return list(open_source(kind, options, ctx(tmp_path)).rows())


def test_jsonl_rows_bad_lines_and_locators(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_bytes(
        b'{"id": 1}\n\n{"id": 2\n[1, 2]\n{"id": "caf\xff"}\n{"id": 3}')
    source = open_source("jsonl", {"path": "p.jsonl"}, ctx(tmp_path))
    rows = list(source.rows())
    assert rows[0] == (1, {"id": 1})
    assert rows[1][0] == 3 and isinstance(rows[1][1], BadRow)
    assert "not JSON" in rows[1][1].reason
    assert rows[2] == (4, BadRow("a JSON array, not an object"))
    assert rows[3][0] == 5 and "not UTF-8 (byte 0xff" in rows[3][1].reason
    assert rows[4] == (6, {"id": 3})  # no newline at the end
    assert source.locate(5) == "p.jsonl:5"


def test_jsonl_gz_and_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "p.jsonl.gz"
    path.parent.mkdir()
    with gzip.open(path, "wb") as fh:
        fh.write(b"\xef\xbb\xbf" + b'{"id": 1}\n{"id": 2}\n')
    assert [r for _, r in read("jsonl", {"path": str(path)}, tmp_path)] == [{"id": 1}, {"id": 2}]


def test_truncated_gz_is_a_source_error(tmp_path: Path) -> None:
    data = gzip.compress(b'{"id": 1}\n' * 5000)
    (tmp_path / "p.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="gzip"):
        read("jsonl", {"path": "p.jsonl.gz"}, tmp_path)


def test_missing_file_fails_when_opened(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist") as exc:
        open_source("jsonl", {"path": "nope.jsonl"}, ctx(tmp_path))
    assert "policy file's folder" in (exc.value.hint or "")


def test_options_are_validated_with_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("sku\n")
    with pytest.raises(SourceError, match="unknown option 'colums'") as exc:
        open_source("csv", {"path": "p.csv", "colums": {}}, ctx(tmp_path))
    assert exc.value.hint == "did you mean 'columns'?"
    with pytest.raises(SourceError, match="needs 'path'"):
        open_source("jsonl", {}, ctx(tmp_path))
    with pytest.raises(SourceError, match="unknown type 'integer'"):
        open_source("csv", {"path": "p.csv", "columns": {"sku": "integer"}}, ctx(tmp_path))
    with pytest.raises(SourceError, match="unknown warm source type 'jsnl'") as exc:
        open_source("jsnl", {}, ctx(tmp_path))
    assert exc.value.hint == "did you mean 'jsonl'?"
    assert exc.value.exit_code == 2


def test_json_top_level_array_and_items_path(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"slug": "a"}, 3]))
    (tmp_path / "b.json").write_text(json.dumps({"data": {"cats": [{"slug": "x"}]}}))
    rows = read("json", {"path": "a.json"}, tmp_path)
    assert rows[0] == (0, {"slug": "a"}) and isinstance(rows[1][1], BadRow)
    source = open_source("json", {"path": "b.json", "items": "data.cats"}, ctx(tmp_path))
    assert list(source.rows()) == [(0, {"slug": "x"})]
    assert source.locate(0) == "b.json: data.cats[0]"
    with pytest.raises(SourceError, match="no 'nope' in data") as exc:
        open_source("json", {"path": "b.json", "items": "data.nope"}, ctx(tmp_path))
    assert "cats" in (exc.value.hint or "")
    with pytest.raises(SourceError, match="not an array"):
        open_source("json", {"path": "b.json"}, ctx(tmp_path))
    (tmp_path / "c.json").write_text("{broken")
    with pytest.raises(SourceError, match="not JSON"):
        open_source("json", {"path": "c.json"}, ctx(tmp_path))


def test_csv_typed_columns_and_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_bytes(
        b"sku,amount_cents,active,meta,note\n"
        b"A,100,yes,{\"a\":1},x\n"
        b"B,ten,no,{},y\n"
        b"C,,true,[],\"multi\nline\"\n"
        b"D,5,maybe,{},z\n"
        b"E,5,no,{},caf\xe9\n"
        b"F,1\n"
        b"G,7,0,{oops,w\n")
    columns = {"amount_cents": "int", "active": "bool", "meta": "json", "note": "str"}
    source = open_source("csv", {"path": "p.csv", "columns": columns}, ctx(tmp_path))
    rows = list(source.rows())
    assert rows[0] == (2, {"sku": "A", "amount_cents": 100, "active": True, "meta": {"a": 1},
                           "note": "x"})
    assert rows[1] == (3, BadRow("column amount_cents: 'ten' is not an integer"))
    assert rows[2] == (4, {"sku": "C", "amount_cents": None, "active": True, "meta": [],
                           "note": "multi\nline"})
    assert rows[3][0] == 6 and "not a boolean" in rows[3][1].reason  # the quoted row took 2 lines
    assert rows[4][0] == 7 and "not UTF-8 (byte 0xe9" in rows[4][1].reason
    assert rows[5] == (8, BadRow("2 cells, the header has 5"))
    assert rows[6][0] == 9 and "column meta" in rows[6][1].reason
    assert source.locate(7) == "p.csv:7"


def test_csv_typed_column_missing_from_header(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("sku,qty\nA,1\n")
    with pytest.raises(SourceError, match="no column 'quantity'"):
        read("csv", {"path": "p.csv", "columns": {"quantity": "int"}}, tmp_path)


def test_sqlite_source_streams_rows_relative_to_policy_folder(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("CREATE TABLE p (id INTEGER, name TEXT, price NUMERIC)")
    db.executemany("INSERT INTO p VALUES (?, ?, ?)", [(i, f"n{i}", i * 1.5) for i in range(1, 6)])
    db.commit()
    db.close()
    source = open_source("sql", {"url": "sqlite:///shop.db", "query":
                                 "SELECT * FROM p WHERE id > :low ORDER BY id",
                                 "params": {"low": 2}, "batch_size": 2}, ctx(tmp_path))
    rows = list(source.rows())
    assert rows == [(1, {"id": 3, "name": "n3", "price": 4.5}), (2, {"id": 4, "name": "n4",
                    "price": 6}), (3, {"id": 5, "name": "n5", "price": 7.5})]
    assert source.locate(2) == "row 2 of the query"
    with pytest.raises(SourceError, match="no such table"):
        list(open_source("sql", {"url": "sqlite:///shop.db", "query": "SELECT * FROM nope"},
                         ctx(tmp_path)).rows())
    with pytest.raises(SourceError, match="does not exist"):
        open_source("sql", {"url": "sqlite:///missing.db", "query": "SELECT 1"}, ctx(tmp_path))


def test_sql_url_password_is_never_shown(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as exc:  # connected when opened, before any write
        open_source("sql", {"url": "postgresql://u:s3cret@127.0.0.1:1/x",
                            "query": "SELECT 1"}, ctx(tmp_path))
    assert "s3cret" not in str(exc.value) and "***" in str(exc.value)


def test_http_options_need_the_env_var(tmp_path: Path) -> None:
    options = {"url": "http://127.0.0.1:1/x", "env_headers": {"Authorization":
                                                               {"var": "TOKEN", "prefix": "Bearer "}}}
    with pytest.raises(SourceError, match="TOKEN is not set"):
        open_source("http", options, ctx(tmp_path))
    source = open_source("http", options, ctx(tmp_path, {"TOKEN": "t0k"}))
    assert source.headers["Authorization"] == "Bearer t0k"  # type: ignore[attr-defined]
    with pytest.raises(SourceError, match="page or cursor"):
        open_source("http", {"url": "http://x/", "pagination": {"type": "links"}}, ctx(tmp_path))


class MemorySource:
    """A plugin source for the registry test: rows from its options."""

    def __init__(self, options: Any, context: SourceContext) -> None:
        self.items = options["items"]

    @property
    def description(self) -> str:
        return "memory"

    def rows(self) -> Iterator[tuple[int, Any]]:
        yield from enumerate(self.items, start=1)

    def locate(self, position: int) -> str:
        return f"item {position}"

    def estimated_rows(self) -> int | None:
        return len(self.items)


def test_plugins_load_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    entry = EntryPoint(name="memory", value="tests.unit.test_warm_sources:MemorySource",
                       group=sources.ENTRY_POINT_GROUP)
    broken = EntryPoint(name="broken", value="tests.unit.no_such_module:X",
                        group=sources.ENTRY_POINT_GROUP)
    monkeypatch.setattr(sources, "plugin_factories", lambda: {"memory": entry, "broken": broken})
    source = open_source("memory", {"items": [{"id": 1}]}, ctx(tmp_path))
    assert list(source.rows()) == [(1, {"id": 1})]
    assert "memory" in sources.known_types()
    with pytest.raises(SourceError, match="failed to load: ModuleNotFoundError"):
        open_source("broken", {}, ctx(tmp_path))
    # the plugin's own exceptions are the plugin's failure, not a cachectl bug (exit 70)
    failing = open_source("memory", {"items": None}, ctx(tmp_path))
    with pytest.raises(SourceError, match="'memory' source plugin failed: TypeError"):
        list(failing.rows())


segment_text = st.one_of(
    st.text(min_size=0, max_size=8),
    st.integers(min_value=-10**12, max_value=10**12),
    st.booleans(), st.none(), st.floats(allow_nan=False), st.just("a:b"))


@given(value=segment_text)
def test_fast_key_renderer_agrees_with_template_render(value: object) -> None:
    for source in ("product:{id}", "user:{id}:profile", "v{id}.json", "{id}"):
        template = KeyTemplate(source, "shop")
        fast = key_renderer(template)
        row = {"id": value}
        try:
            expected: str | None = template.render(row)
        except KeyParamError:
            expected = None
        try:
            got: str | None = fast(row)
        except KeyParamError:
            got = None
        assert got == expected


def test_values_are_compact_utf8_json() -> None:
    import datetime
    import decimal

    assert encode_value({"a": "é", "b": [1, 2.5]}) == '{"a":"é","b":[1,2.5]}'.encode()
    assert encode_value({"d": decimal.Decimal("12.00"), "t": datetime.date(2024, 1, 2)}) == \
        b'{"d":12,"t":"2024-01-02"}'


def test_the_documented_plugin_example_works(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "warm.md").read_text()
    code = doc.split("# cachectl_markdown/__init__.py\n", 1)[1].split("```", 1)[0]
    package = tmp_path / "plugins" / "cachectl_markdown"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    entry = EntryPoint(name="markdown", value="cachectl_markdown:open_source",
                       group=sources.ENTRY_POINT_GROUP)
    monkeypatch.setattr(sources, "plugin_factories", lambda: {"markdown": entry})
    articles = tmp_path / "content" / "articles"
    articles.mkdir(parents=True)
    (articles / "hello.md").write_text("---\ntitle: Hello\n---\nBody text\n")
    (articles / "broken.md").write_text("---\n- a list\n---\nx\n")
    source = open_source("markdown", {"folder": "content/articles"}, ctx(tmp_path))
    rows = list(source.rows())
    assert rows[0] == (0, BadRow("the front matter is not a mapping"))
    assert rows[1] == (1, {"slug": "hello", "title": "Hello", "body": "Body text"})
    assert source.locate(0) == "broken.md"


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.35, 0.99999])
def test_bulk_ttls_are_write_ttl_ms_draws_in_order(jitter: float) -> None:
    """The bulk path draws a chunk's TTLs at once (randbytes); they must be write_ttl_ms's
    draws from the same generator, in row order, within the bounds the report states."""
    import random
    import re
    from types import SimpleNamespace

    from cachectl.freshness import ttl_bounds_ms, write_ttl_ms
    from cachectl.policy import parse_policy
    from cachectl.warm.bulk import _command_writer

    text = ("version: 1\nnamespaces:\n  p: {key: 'p:{id}', ttl: 1h, stale: 1m, "
            f"stale_if_error: 2h, jitter: {jitter}}}\n")
    ns = parse_policy(text, "x.yaml", {}).policy.namespace("p")  # type: ignore[union-attr]
    warm = SimpleNamespace(ns=ns, only_missing=False, ttl_rng=random.Random(5))
    write = _command_writer(warm)  # type: ignore[arg-type]
    reference = random.Random(5)
    low, high = ttl_bounds_ms(ns)
    for n in (64, 1, 37):
        keys = [b"p:%d" % i for i in range(n)]
        out = write(keys, [1] * n, [b"x"] * n)
        written = [int(t) for t in re.findall(rb"\$2\r\nPX\r\n\$\d+\r\n(\d+)\r\n", out)]
        assert written == [write_ttl_ms(ns, reference) for _ in range(n)]
        assert all(low <= t <= high for t in written)
    if jitter:
        draws = [write_ttl_ms(ns, reference) for _ in range(20000)]  # the whole range is drawn
        assert min(draws) - low < (high - low) / 100 and high - max(draws) < (high - low) / 100


def test_sqlite_works_without_sqlalchemy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("CREATE TABLE p (id INTEGER, name TEXT)")
    db.executemany("INSERT INTO p VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 6)])
    db.commit()
    db.close()
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # `import sqlalchemy` now fails
    source = open_source("sql", {"url": "sqlite:///shop.db", "batch_size": 2,
                                 "query": "SELECT * FROM p WHERE id >= :low", "params": {"low": 4}},
                         ctx(tmp_path))
    assert type(source).__name__ == "SqliteSource"
    assert list(source.rows()) == [(1, {"id": 4, "name": "n4"}), (2, {"id": 5, "name": "n5"})]
    with pytest.raises(SourceError, match="needs SQLAlchemy"):
        open_source("sql", {"url": "postgresql://x@h/db", "query": "SELECT 1"}, ctx(tmp_path))
    with pytest.raises(SourceError, match="no such table"):
        list(open_source("sql", {"url": "sqlite:///shop.db", "query": "SELECT * FROM q"},
                         ctx(tmp_path)).rows())


def test_count_lines_is_exact_for_small_files_and_estimated_for_big_ones(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"".join(b'{"id": %d, "pad": "%s"}\n' % (i, b"x" * (i % 37))
                              for i in range(20000)))
    assert sources.count_lines(path) == 20000
    estimate = sources.count_lines(path, exact_bytes=80_000)  # samples the first 10 kB
    assert estimate is not None and estimate != 20000 and abs(estimate - 20000) < 2000  # within 10%
    path.write_bytes(b'{"id": 1}\n{"id": 2}')  # no newline at the end
    assert sources.count_lines(path) == 2
    gz = tmp_path / "p.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"id": 1}\n'))
    assert sources.count_lines(gz) is None


class StuckSource:
    """A plugin source whose read blocks after its rows until ``interrupt()`` is called."""

    def __init__(self, options: Any, context: SourceContext) -> None:
        self.rows_before = int(options["rows"])
        self.fail_with = options["fail_with"]
        self.blocked = STUCK_BLOCKED
        self.woken = threading.Event()

    @property
    def description(self) -> str:
        return "stuck"

    def rows(self) -> Iterator[tuple[int, Any]]:
        yield from ((i, {"id": i}) for i in range(1, self.rows_before + 1))
        self.blocked.set()
        if not self.woken.wait(30):
            raise AssertionError("never interrupted")
        if self.fail_with == "ReadInterrupted":
            raise sources.ReadInterrupted("cancelled")
        raise RuntimeError("the plugin's client raised its own error once cancelled")

    def interrupt(self) -> None:
        self.woken.set()

    def locate(self, position: int) -> str:
        return f"item {position}"

    def estimated_rows(self) -> int | None:
        return None


STUCK_BLOCKED = threading.Event()


@pytest.mark.parametrize("fail_with", ["ReadInterrupted", "RuntimeError"])
def test_a_stop_interrupts_a_plugin_read_blocked_between_batches(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fail_with: str) -> None:
    from cachectl.errors import InterruptedWork
    from cachectl.policy import load_policy
    from cachectl.warm import WarmReport, warm_namespaces

    entry = EntryPoint(name="stuck", value="tests.unit.test_warm_sources:StuckSource",
                       group=sources.ENTRY_POINT_GROUP)
    monkeypatch.setattr(sources, "plugin_factories", lambda: {"stuck": entry})
    (tmp_path / "cachectl.yaml").write_text(
        "version: 1\nredis: {key_prefix: t}\ndefaults: {ttl: 10m}\nnamespaces:\n"
        "  product:\n    key: 'product:{id}'\n"
        f"    warm: {{source: {{type: stuck, rows: 250, fail_with: {fail_with}}}}}\n")
    policy = load_policy(tmp_path / "cachectl.yaml", env={})
    STUCK_BLOCKED.clear()
    started = time.monotonic()
    with pytest.raises(InterruptedWork) as caught:
        # a batch of 1,000: the 250 rows read wait in it while the read is blocked
        warm_namespaces(None, policy, dry_run=True, should_stop=STUCK_BLOCKED.is_set)
    assert time.monotonic() - started < 2
    report = caught.value.partial
    assert isinstance(report, WarmReport) and report.interrupted
    (product,) = report.namespaces
    assert (product.rows, product.written) == (250, 250)  # the rows read are kept
