"""cachectl bench over TLS (with a client certificate) and through Sentinel, via the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachectl.cli import main
from tests.support.sentinel import SentinelFixture
from tests.support.tls import TlsFiles, TlsServer, redis_supports_tls

# These tests are about reaching the server (TLS, Sentinel), not its speed: latency
# thresholds no loaded CI machine can miss keep bench's verdict (exit 1) out of them.
POLICY = ('version: 1\nredis: {key_prefix: t}\n'
          'thresholds: {latency_p99_ms: {cached: 60000, hot: 60000}}\nnamespaces:\n'
          '  price: {key: "price:{sku}", ttl: 5m}\n')
FAST = ["--requests", "200", "--warmup", "0s", "--keys", "20", "--value-size", "32B",
        "--pipeline", "4", "--clients", "2", "--json"]



@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory,
                certs: TlsFiles) -> Iterator[TlsServer]:
    server = TlsServer(tmp_path_factory.mktemp("bench-mtls"), certs, client_certs=True,
                       password="tls-secret").start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.mark.skipif(not redis_supports_tls(), reason="redis-server built without TLS")
def test_bench_over_mutual_tls_with_a_password(mtls_server: TlsServer, certs: TlsFiles,
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    url = f"rediss://:tls-secret@127.0.0.1:{mtls_server.port}/0"
    code = main(["bench", "-p", str(policy), "--url", url, "--tls-ca", str(certs.ca),
                 "--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key),
                 *FAST])
    out, err = capsys.readouterr()
    assert code == 0, out + err  # the JSON names the failed run's reasons
    doc = json.loads(out)
    run = doc["runs"][0]
    assert run["errors"] == 0 and run["requests"] >= 200
    assert "tls-secret" not in out + err
    assert mtls_server.client().dbsize() == 0  # benchmark keys removed


def test_bench_through_sentinel_reads_the_current_primary(
        sentinel: SentinelFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    primary = sentinel.current_primary()
    args = ["bench", "-p", str(policy), "--master-name", sentinel.master_name, *FAST]
    for addr in sentinel.sentinel_addrs:
        args += ["--sentinel", addr]
    before = primary.client().info("commandstats").get("cmdstat_get", {}).get("calls", 0)
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, out + err  # the JSON names the failed run's reasons
    run = json.loads(out)["runs"][0]
    assert run["errors"] == 0 and run["misses"] == 0
    after = primary.client().info("commandstats")["cmdstat_get"]["calls"]
    assert after - before >= 200  # the GETs went to the primary Sentinel named
    assert primary.client().dbsize() == 0
