"""The connection layer over TLS: server-only TLS, client certificates, wrong CA, clear text."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachectl.connection import build_settings, connect
from cachectl.errors import RedisUnavailableError, UsageError
from tests.support import acl, shop
from tests.support.reliability import (
    Recorder,
    assert_no_traceback,
    run_cli,
)
from tests.support.tls import TlsFiles, TlsServer, make_tls_files, redis_supports_tls

pytestmark = pytest.mark.skipif(not redis_supports_tls(), reason="redis-server built without TLS")



@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("other-pki"), ca_name="some other CA")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory,
               certs: TlsFiles) -> Iterator[TlsServer]:
    server = TlsServer(tmp_path_factory.mktemp("tls"), certs).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory,
                certs: TlsFiles) -> Iterator[TlsServer]:
    server = TlsServer(tmp_path_factory.mktemp("mtls"), certs,
                            client_certs=True).start()
    yield server
    server.stop()


def test_rediss_with_ca_verifies_and_connects(tls_server: TlsServer, certs: TlsFiles) -> None:
    client = connect(build_settings(url_flag=tls_server.url, env={}, tls_ca=str(certs.ca)))
    client.set("shop:product:1", b"x", px=5000)
    assert tls_server.client().get("shop:product:1") == b"x"  # type: ignore[attr-defined]


def test_client_certificate_is_sent_when_required(mtls_server: TlsServer,
                                                  certs: TlsFiles) -> None:
    client = connect(build_settings(url_flag=mtls_server.url, env={}, tls_ca=str(certs.ca),
                                    tls_cert=str(certs.client_cert),
                                    tls_key=str(certs.client_key)))
    assert client.ping()


def test_tls_insecure_skips_verification(tls_server: TlsServer) -> None:
    client = connect(build_settings(url_flag=tls_server.url, env={}, tls_insecure=True))
    assert client.ping()


def test_missing_client_certificate_is_exit_3_naming_it(
        mtls_server: TlsServer, certs: TlsFiles, reliability: Recorder) -> None:
    with pytest.raises(RedisUnavailableError) as info:
        connect(build_settings(url_flag=mtls_server.url, env={}, tls_ca=str(certs.ca),
                               timeout_s=2))
    assert "TLS failed" in info.value.message
    assert "--tls-cert" in (info.value.hint or "")
    reliability.add("tls-no-client-cert", area="tls",
                    fault="server requires a client certificate, none given", command="connect",
                    did="exit 3: TLS failed", verified="the hint names --tls-cert/--tls-key")


def test_wrong_ca_is_exit_3_with_a_tls_message(
        tls_server: TlsServer, other_ca: TlsFiles, reliability: Recorder) -> None:
    with pytest.raises(RedisUnavailableError) as info:
        connect(build_settings(url_flag=tls_server.url, env={}, tls_ca=str(other_ca.ca)))
    assert "TLS failed" in info.value.message
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.message
    assert "--tls-ca" in (info.value.hint or "")
    reliability.add("tls-wrong-ca", area="tls", fault="server certificate from another CA",
                    command="connect", did="exit 3: TLS failed: CERTIFICATE_VERIFY_FAILED",
                    verified="the hint names --tls-ca and --tls-insecure")


def test_clear_text_to_a_tls_port_suggests_rediss(
        tls_server: TlsServer, reliability: Recorder) -> None:
    url = tls_server.url.replace("rediss://", "redis://")
    with pytest.raises(RedisUnavailableError) as info:
        connect(build_settings(url_flag=url, env={}, timeout_s=1))
    assert "rediss://" in (info.value.hint or "")
    reliability.add("tls-clear-text", area="tls", fault="redis:// to a TLS-only port",
                    command="connect", did="exit 3: cannot connect",
                    verified="the hint suggests rediss://")


def test_tls_flags_with_a_clear_text_url_are_refused(
        certs: TlsFiles, reliability: Recorder) -> None:
    with pytest.raises(UsageError) as info:
        build_settings(url_flag="redis://127.0.0.1:1/0", env={}, tls_ca=str(certs.ca))
    assert "rediss://" in info.value.message
    with pytest.raises(UsageError):
        build_settings(url_flag="rediss://127.0.0.1:1/0", env={}, tls_cert=str(certs.client_cert))
    reliability.add("tls-flags-clear-url", area="tls",
                    fault="--tls-ca with a redis:// URL (would silently connect in clear text)",
                    command="any", did="exit 2: " + info.value.message,
                    verified="no connection attempted")


def test_unreadable_ca_file_is_exit_3_not_a_traceback(
        tls_server: TlsServer, tmp_path: object) -> None:
    with pytest.raises(RedisUnavailableError):
        connect(build_settings(url_flag=tls_server.url, env={}, tls_ca="/nonexistent/ca.crt"))


# -- every command over TLS ---------------------------------------------------------------

COMMANDS = {
    "inspect": ["inspect", "--json"],
    "audit": ["audit", "--json"],
    "stats": ["stats", "--interval", "100ms", "--json"],
    "warm": ["warm", "-n", "product", "--json"],
    "flush": ["flush", "-n", "price", "--yes", "--json"],
    "bench": ["bench", "-n", "cart", "--requests", "100", "--warmup", "0s", "--keys", "20",
              "--json"],
}


@pytest.fixture(scope="module")
def tls_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shop.write_policy(tmp_path_factory.mktemp("tls-policy"))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_runs_over_mutual_tls_as_its_least_privileged_user(
        name: str, mtls_server: TlsServer, certs: TlsFiles, tls_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec(f"cachectl.cli.{name}") is None:
        pytest.skip(f"cachectl {name} is not built yet")
    client = mtls_server.client()
    client.flushall()
    if name != "warm":
        shop.seed(client)
    user = acl.family_user([client], acl.COMMAND_FAMILY[name])
    url = user.url("127.0.0.1", mtls_server.port, scheme="rediss")
    run = run_cli([*COMMANDS[name], "--policy", str(tls_policy), "--url", url,
                   "--tls-ca", str(certs.ca), "--tls-cert", str(certs.client_cert),
                   "--tls-key", str(certs.client_key)], capsys)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.text
    assert "permission" not in run.err and user.password not in run.text
    json.loads(run.out)
    present = shop.all_keys([client])
    if name == "warm":
        assert shop.product_keys() <= present
    elif name == "flush":
        assert not shop.price_keys() & present and shop.product_keys() <= present
    else:
        assert shop.product_keys() | shop.price_keys() <= present
    assert shop.foreign_intact([client]) or name == "warm"


@pytest.mark.parametrize("name", ["inspect", "flush", "stats"])
def test_command_with_wrong_ca_is_exit_3(
        name: str, tls_server: TlsServer, other_ca: TlsFiles, tls_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec(f"cachectl.cli.{name}") is None:
        pytest.skip(f"cachectl {name} is not built yet")
    run = run_cli([*COMMANDS[name], "--policy", str(tls_policy), "--url", tls_server.url,
                   "--tls-ca", str(other_ca.ca)], capsys)
    assert_no_traceback(run)
    assert run.code == 3, run.text
    assert "TLS failed" in run.err and "--tls-ca" in run.err
