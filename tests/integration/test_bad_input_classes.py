"""Bad input is exit 2 or a rejected row, never exit 70 ("a bug") and never a hang.

Each class is fixed at its root, so each test tries several members of it: every
numeric option through one bound (cachectl.cli.app.bound_numeric_options), every file a
user names through one opener (cachectl.files), every JSON document through one reader
(cachectl.warm.sources.loads_json), every JSON output through one writer
(cachectl.render.console.write_json).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import shop
from tests.support.http_source import Api, serve
from tests.support.redis_server import RedisServer
from tests.support.reliability import Recorder, assert_no_traceback, run_cli

DEEP = "[" * 3000 + "]" * 3000


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return shop.write_policy(tmp_path)


@pytest.mark.parametrize(("command", "flag", "values"), [
    (["flush", "-n", "price", "--dry-run"], "--timeout", ["nan", "inf", "-1", "0"]),
    (["inspect"], "--timeout", ["nan", "-inf"]),
    (["flush", "-n", "price", "--dry-run"], "--rate", ["nan", "inf", "1e-300", "0"]),
    (["warm", "-n", "product"], "--rate", ["nan", "1e-300"]),
    (["audit"], "--rate", ["inf"]),
    (["flush", "--history"], "--limit", [str(2**64), str(-(2**70))]),
    (["inspect", "-n", "product"], "--limit", [str(2**64)]),
    (["bench", "-n", "cart"], "--keys", [str(2**80)]),
])
def test_out_of_range_numbers_are_usage_errors(
        command: list[str], flag: str, values: list[str], policy: Path, redis_url: str,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    for value in values:
        run = run_cli([*command, "--policy", str(policy), "--url", redis_url, flag, value],
                      capsys)
        assert run.code == 2, (flag, value, run.text)
        assert f"Invalid value for '{flag}'" in run.err, run.err
        assert_no_traceback(run)
    reliability.add("bad-number-options", area="bad input",
                    fault="--timeout nan/inf/-1/0, --rate nan/inf/1e-300/0, --limit and --keys "
                    "beyond 64 bits",
                    command="flush, inspect, warm, audit, bench",
                    did="exit 2: Invalid value for '--FLAG': VALUE must be a finite number / "
                    "must be positive / must be between 0.001 and 1e+09 / must fit in 64 bits",
                    verified="one check on every int and float option of every command; "
                    "nothing connected, no traceback")


def test_deep_json_and_lone_surrogates_are_rejected_rows(
        policy: Path, redis_url: str, redis_server: RedisServer,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    seeds = policy.parent / "seeds" / "products.jsonl"
    seeds.write_text("\n".join([
        json.dumps({"id": 1, "name": "fine"}),
        '{"id": 2, "deep": ' + DEEP + "}",
        '{"id": "\\ud800"}',
        '{"id": 4, "name": "\\udc00 lone"}',
        DEEP,
    ]) + "\n")
    for extra in ([], ["--json"]):
        run = run_cli(["warm", "-n", "product", "--policy", str(policy), "--url", redis_url,
                       *extra], capsys)
        assert run.code == 1, run.text
        assert_no_traceback(run)
        if extra:
            report = json.loads(run.out)
            assert (report["written"], report["rejected"]) == (1, 4), report
            reasons = [p["reason"] for p in report["namespaces"][0]["problems"]]
            assert "not JSON (nested too deeply to read)" in reasons
    assert redis_server.client().exists("shop:product:1") == 1
    reliability.add("bad-rows-deep-json-surrogates", area="bad input",
                    fault="seed rows nested 3,000 deep, and rows holding lone surrogates "
                    "(\\ud800) in a key field and a value",
                    command="warm -n product (text and --json)",
                    did="exit 1: the 4 rows rejected with their lines (not JSON: nested too "
                    "deeply; value cannot be encoded), the good row written",
                    verified="--json prints valid JSON (surrogates escaped); no exit 70")


def test_hostile_http_answers_are_source_errors(
        policy: Path, redis_url: str, capsys: pytest.CaptureFixture[str],
        reliability: Recorder) -> None:
    original = policy.read_text()
    with serve(Api([{"id": i} for i in range(3)])) as api:
        for path, message, code in (("/loop", "more than 10 redirects", 2),
                                    ("/gzip-corrupt", "DecodingError", 2),
                                    ("/deep", "nested too deeply", 2),
                                    # a timeout, like a refused connection: unreachable
                                    ("/drip", "took longer than the timeout", 3)):
            policy.write_text(original.replace(
                "source: {type: jsonl, path: seeds/products.jsonl}",
                f"source: {{type: http, url: '{api.url}{path}', timeout: 1, retries: 0}}"))
            started = time.monotonic()
            run = run_cli(["warm", "-n", "product", "--policy", str(policy), "--url", redis_url],
                          capsys)
            took = time.monotonic() - started
            assert run.code == code, (path, run.text)
            assert message in run.err, (path, run.err)
            assert_no_traceback(run)
            assert took < 8, (path, took)  # the dripping server is cut off by the deadline
    reliability.add("bad-http-answers", area="bad input",
                    fault="an http source answering a redirect loop, a corrupt gzip body, JSON "
                    "nested 3,000 deep, and a body dripped one byte every 0.2 s",
                    command="warm -n product (http source, timeout: 1)",
                    did="exit 2: more than 10 redirects / DecodingError / not JSON, nested "
                    "too deeply; exit 3 (unreachable): the answer took longer than the timeout",
                    verified="no exit 70; the dripping server stopped within the deadline, "
                    "not after the whole body")


def test_fifos_and_devices_are_refused_not_waited_on(
        policy: Path, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        reliability: Recorder) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    runs = [
        (["lint", str(fifo)], "a FIFO"),
        (["inspect", "--policy", str(fifo), "--url", redis_url], "a FIFO"),
        (["inspect", "--policy", "/dev/zero", "--url", redis_url], "a character device"),
        (["warm", "-n", "product", "--policy", str(policy), "--url", redis_url,
          "--source-override", f"product={fifo}"], "a FIFO"),
        (["warm", "-n", "product", "--policy", str(policy), "--url", redis_url,
          "--source-override", "product=/dev/zero"], "a character device"),
        (["inspect", "--policy", str(policy), "--url", redis_url, "--password-file",
          "/dev/zero"], "a character device"),
    ]
    bad_password = tmp_path / "pw"
    bad_password.write_bytes(b"\xff\xfe\x00pw")
    runs.append((["inspect", "--policy", str(policy), "--url", redis_url, "--password-file",
                  str(bad_password)], "is not UTF-8 text"))
    for argv, message in runs:
        run = run_cli(argv, capsys)
        assert run.code in (1, 2), (argv, run.text)
        assert message in run.text, (argv, run.text)
        assert_no_traceback(run)
    reliability.add("bad-files-fifo-device", area="bad input",
                    fault="a FIFO and /dev/zero as the policy, a warm source and the "
                    "password file; a password file that is not UTF-8",
                    command="lint, inspect, warm",
                    did="exit 2 (lint: its report): a FIFO (named pipe) / a character device, "
                    "not a regular file; --password-file … is not UTF-8 text",
                    verified="returned at once (the FIFO has no writer: open() would block "
                    "forever); no exit 70")


def test_a_pattern_every_key_of_the_policy_matches_is_refused(
        policy: Path, redis_url: str, redis_server: RedisServer,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    client = redis_server.client()
    shop.seed(client)
    before = client.dbsize()
    for pattern in ("*:*", "shop:*", "*p:*", "s?op:*", "*:*:*"):
        run = run_cli(["flush", "--pattern", pattern, "--force", "--yes", "--policy",
                       str(policy), "--url", redis_url], capsys)
        assert run.code == 2, (pattern, run.text)
        assert "would match every key of every namespace" in run.err, run.err
    assert client.dbsize() == before
    run = run_cli(["flush", "--pattern", "shop:product:1*", "--force", "--yes", "--json",
                   "--policy", str(policy), "--url", redis_url], capsys)
    assert run.code == 0, run.text
    assert client.exists("shop:product:2") == 1 and client.exists("shop:product:1") == 0
    reliability.add("flush-pattern-matches-policy-keyspace", area="bad input",
                    fault="flush --pattern '*:*' / 'shop:*' / '*p:*' / 's?op:*' / '*:*:*' "
                    "--force: globs with literal characters that every key of the policy matches",
                    command="flush --pattern GLOB --force --yes",
                    did="exit 2: would match every key of every namespace of the policy; hint: "
                    "--namespace or --tag",
                    verified="no key removed; a pattern that singles out keys "
                    "(shop:product:1*) still flushes just those")


def test_an_unterminated_csv_quote_is_a_rejected_row_not_a_swallowed_file(
        tmp_path: Path, redis_url: str, redis_server: RedisServer,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    rows = [f"{i},item {i}" for i in range(1, 3001)]
    rows[9] = '10,"never closed'  # line 11: swallowed every row after it before
    rows[2999] = '3000,"closed only by the end of the file'
    (tmp_path / "rows.csv").write_text("id,name\n" + "\n".join(rows) + "\n"
                                       + '9999,"a value\nover two lines"\n')
    (tmp_path / "cachectl.yaml").write_text("""\
version: 1
redis: {key_prefix: c}
defaults: {ttl: 10m}
namespaces:
  item: {key: "item:{id}", warm: {source: {type: csv, path: rows.csv}}}
""")
    run = run_cli(["warm", "--json", "--policy", str(tmp_path / "cachectl.yaml"), "--url",
                   redis_url], capsys)
    assert run.code == 1, run.text
    report = json.loads(run.out)
    problems = {p["locator"]: p["reason"] for p in report["namespaces"][0]["problems"]}
    assert "never closed" in problems["rows.csv:11"] or "runs over" in problems["rows.csv:11"]
    assert report["rejected"] == 2 and report["written"] == 2999, report
    client = redis_server.client()
    assert client.exists("c:item:11", "c:item:2999") == 2  # the rows after the bad quote
    assert client.get("c:item:9999") == b'{"id":"9999","name":"a value\\nover two lines"}'
    reliability.add("csv-unterminated-quote", area="bad input",
                    fault="a CSV row whose quote is never closed, 2,990 rows before the end, "
                    "and one closed only by the end of the file",
                    command="warm --json (csv source)",
                    did="exit 1: each is a rejected row with its line (a quoted field opened "
                    "on this line runs over 1000 lines / is never closed); the lines after "
                    "it read again",
                    verified="every other row written (2,999 of 3,001), a legitimate quoted "
                    "value over two lines kept whole")


def test_a_sql_source_that_never_answers_stops_warm_before_any_write(
        tmp_path: Path, redis_url: str, redis_server: RedisServer,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    port = silent.getsockname()[1]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(50)))
    (tmp_path / "cachectl.yaml").write_text(f"""\
version: 1
redis: {{key_prefix: s}}
defaults: {{ttl: 10m}}
namespaces:
  first: {{key: "first:{{id}}", warm: {{source: {{type: jsonl, path: p.jsonl}}}}}}
  rows:
    key: "rows:{{id}}"
    warm:
      source: {{type: sql, url: "postgresql://u:QxZjSqlPw@127.0.0.1:{port}/db",
               query: "SELECT 1 AS id", connect_timeout: 1}}
""")
    try:
        started = time.monotonic()
        run = run_cli(["warm", "--policy", str(tmp_path / "cachectl.yaml"), "--url",
                       redis_url], capsys)
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        silent.close()
    assert run.code == 3, run.text  # the source cannot be reached: like Redis, exit 3
    assert "://u:***@127.0.0.1" in run.err and "timeout" in run.err, run.err
    assert "QxZjSqlPw" not in run.text
    assert took < 15, took
    assert redis_server.client().dbsize() == 0  # checked before the first namespace
    assert_no_traceback(run)
    reliability.add("sql-source-never-answers", area="bad input",
                    fault="a sql warm source whose server accepts TCP and never answers, "
                    "after a jsonl namespace in the same policy",
                    command="warm (sql source, connect_timeout: 1)",
                    did="exit 3 after the connect timeout: sql source postgresql://u:***@… "
                    "cannot be used: connection timeout expired",
                    verified="no key written (the database is connected before the first "
                    "namespace is warmed); the password never printed")


def test_bench_refuses_to_write_past_maxmemory_and_evicts_nothing(
        policy: Path, redis_factory: Callable[..., RedisServer],
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    server = redis_factory("--maxmemory", "24mb", "--maxmemory-policy", "allkeys-lru")
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(15_000):  # ~17 MB of application keys: ~7 MB left below maxmemory
        pipe.set(f"shop:product:{i}", b"x" * 1000, px=3_600_000)
    pipe.execute()
    apps = client.dbsize()
    run = run_cli(["bench", "-n", "product", "--keys", "40000", "--value-size", "1KiB",
                   "--requests", "100", "--warmup", "0s", "--policy", str(policy),
                   "--url", server.url], capsys)
    assert run.code == 2, run.text
    assert "left below maxmemory" in run.err and "evict application keys (allkeys-lru)" \
        in run.err, run.err
    fits = int(run.err.split("hint: --keys ")[1].split()[0])
    assert 0 < fits < 40_000
    run = run_cli(["bench", "-n", "product", "--keys", str(fits), "--value-size", "1KiB",
                   "--requests", "100", "--warmup", "0s", "--policy", str(policy),
                   "--url", server.url], capsys)
    assert run.code in (0, 1), run.text
    assert client.info("stats")["evicted_keys"] == 0
    assert client.dbsize() == apps  # every application key still there, bench keys removed
    reliability.add("bench-maxmemory-headroom", area="one server",
                    fault="bench asked to write ~44 MB on a server at maxmemory 24mb "
                    "(allkeys-lru) already holding ~17 MB of application keys",
                    command="bench -n product --keys 40000 --value-size 1KiB",
                    did="exit 2 before writing: the server has N left below maxmemory: at "
                    "maxmemory it would evict application keys; hint: --keys N fits",
                    verified="evicted_keys 0 and all 15,000 application keys kept; a rerun "
                    "with the hinted --keys ran and evicted nothing")


def test_the_internal_key_space_is_reserved_in_lint_warm_and_the_matcher(
        tmp_path: Path, redis_url: str, redis_server: RedisServer,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    from cachectl.keyspace.matcher import NamespaceMatcher
    from cachectl.policy import load_policy

    client = redis_server.client()
    client.xadd("s:cachectl:audit", {"what": "an earlier flush"})
    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"kind": "cachectl", "id": "audit"}) + "\n"
        + json.dumps({"kind": "item", "id": "1"}) + "\n")
    policy = tmp_path / "cachectl.yaml"
    policy.write_text("""\
version: 1
redis: {key_prefix: s}
defaults: {ttl: 10m}
namespaces:
  any: {key: "{kind}:{id}", warm: {source: {type: jsonl, path: rows.jsonl}}}
""")
    run = run_cli(["warm", "--json", "--policy", str(policy), "--url", redis_url], capsys)
    assert run.code == 1, run.text
    reasons = [p["reason"] for p in json.loads(run.out)["namespaces"][0]["problems"]]
    assert any("cachectl's own key space" in r for r in reasons), reasons
    assert client.type("s:cachectl:audit") == b"stream"  # not overwritten by a row
    assert client.exists("s:item:1") == 1
    matcher = NamespaceMatcher.from_policy(load_policy(policy, env={}))
    assert matcher.namespace_of(b"s:cachectl:audit") is None
    assert matcher.namespace_of(b"s:item:1") is not None
    bad = tmp_path / "bad.yaml"
    bad.write_text("""\
version: 1
redis: {key_prefix: s}
namespaces:
  audit: {key: "cachectl:{id}", ttl: 1h}
  forever: {key: "forever:{id}", ttl: 100000000000000000000s}
  xf: {key: "xf:{id}", ttl: 1h, early_refresh: .nan}
  api:
    key: "api:{id}"
    ttl: 1h
    warm:
      source: {type: http, url: "http://example.test/x", retries: -1, timeout: -1,
               pagination: {type: page, size: ten}}
""")
    run = run_cli(["lint", str(bad)], capsys)
    assert run.code == 1
    for code in ("CP214", "CP110", "CP004"):
        assert code in run.out, run.out
    assert run.out.count("CP412") == 3, run.out  # retries, timeout, pagination size
    reliability.add("reserved-key-space-and-unworkable-values", area="bad input",
                    fault="a template cachectl:{id}; a row rendering {kind}:{id} as "
                    "cachectl:audit; ttl 1e20 s; early_refresh: .nan; an http source with "
                    "retries: -1, timeout: -1, pagination size: ten",
                    command="lint; warm --json",
                    did="lint: CP214 reserved-key-space, CP110 ttl-beyond-redis, CP004 "
                    "early_refresh, CP412 invalid-source-option (x3); warm: the row rejected "
                    "(falls in cachectl's own key space)",
                    verified="the flush audit stream is still a stream; the matcher attributes "
                    "no internal key to a namespace")
