"""No password is ever printed: every command, with the password in the URL, in
REDIS_PASSWORD, in --password-file and in the policy, with --json and --debug, against a
working server, a wrong password and an unreachable one."""

from __future__ import annotations

import importlib.util
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachectl.cli import main
from tests.support import shop
from tests.support.redis_server import RedisServer, free_port
from tests.support.reliability import Recorder, reliability  # noqa: F401

SECRET = "Zq8-s3cr3t-xK2"  # distinctive: any occurrence in output is a leak
WRONG = "Wr0ng-pa55-7Tq"

BENCH = ["bench", "-n", "cart", "--requests", "50", "--warmup", "0s", "--keys", "10"]
COMMANDS: dict[str, list[str]] = {
    "inspect": ["inspect"],
    "inspect-key": ["inspect", "shop:product:1"],
    "audit": ["audit"],
    "warm": ["warm", "-n", "product"],
    "flush": ["flush", "-n", "price", "--yes"],
    "flush-history": ["flush", "--history"],
    "stats": ["stats", "--interval", "100ms"],
    "bench": BENCH,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path_factory.mktemp("secret-redis"), password=SECRET).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shop.write_policy(tmp_path_factory.mktemp("secret-policy"))


def _available(argv: list[str]) -> bool:
    return importlib.util.find_spec(f"cachectl.cli.{argv[0]}") is not None


def _run(argv: list[str], capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> tuple[int, str]:
    """Run in-process; with --debug, include the traceback Python would print."""
    for name in ("REDIS_URL", "REDIS_PASSWORD", "CACHECTL_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        code = main(argv)
        tb = ""
    except BaseException as exc:  # --debug re-raises: what the console script would print
        code = -1
        tb = "".join(traceback.format_exception(exc))
    captured = capsys.readouterr()
    return code, captured.out + captured.err + tb


def _variants(server: RedisServer, tmp_path: Path) -> list[tuple[str, list[str], dict[str, str],
                                                                  set[int]]]:
    """(name, extra args, env, acceptable exit codes)."""
    host = f"127.0.0.1:{server.port}"
    dead = f"127.0.0.1:{free_port()}"
    pw_file = tmp_path / "password"
    pw_file.write_text(SECRET + "\n")
    ok = {0, 1}
    return [
        ("url", ["--url", f"redis://:{SECRET}@{host}/0"], {}, ok),
        ("url-json", ["--url", f"redis://:{SECRET}@{host}/0", "--json"], {}, ok),
        ("user-url", ["--url", f"redis://default:{SECRET}@{host}/0"], {}, ok),
        ("env", ["--url", f"redis://{host}/0"], {"REDIS_PASSWORD": SECRET}, ok),
        ("env-url", [], {"REDIS_URL": f"redis://:{SECRET}@{host}/0"}, ok),
        ("password-file", ["--url", f"redis://{host}/0", "--password-file", str(pw_file)], {},
         ok),
        ("wrong-password-json", ["--url", f"redis://:{SECRET}x@{host}/0", "--json"], {}, {3}),
        ("wrong-password-debug", ["--debug", "--url", f"redis://:{SECRET}x@{host}/0"], {},
         {-1}),
        ("env-wrong-debug", ["--debug", "--url", f"redis://{host}/0"],
         {"REDIS_PASSWORD": SECRET + "x"}, {-1}),
        ("unreachable", ["--url", f"redis://:{SECRET}@{dead}/0", "--timeout", "0.5"], {}, {3}),
        ("unreachable-debug-json", ["--debug", "--json", "--url",
                                    f"redis://:{SECRET}@{dead}/0", "--timeout", "0.5"], {},
         {-1}),
        ("unreachable-env-debug", ["--debug", "--url", f"redis://{dead}/0", "--timeout", "0.5"],
         {"REDIS_PASSWORD": SECRET}, {-1}),
        ("query-password", ["--url", f"redis://{host}/0?password={SECRET}"], {}, ok),
    ]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_command_ever_prints_the_password(
        command: str, server: RedisServer, policy: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        reliability: Recorder) -> None:  # noqa: F811
    argv = COMMANDS[command]
    if not _available(argv):
        pytest.skip(f"cachectl {argv[0]} is not built yet")
    tried = []
    for name, extra, env, codes in _variants(server, tmp_path):
        if command != "warm":
            shop.seed(server.client())
        code, output = _run([*argv, "--policy", str(policy), *extra], capsys, monkeypatch, env)
        assert code in codes, (name, code, output)
        assert SECRET not in output, f"{command} [{name}] printed the password:\n{output}"
        assert WRONG not in output
        tried.append(name)
    # the secret is not stored in what cachectl writes either (e.g. flush's audit stream)
    for key in server.client().scan_iter(match="shop:cachectl:*"):
        if server.client().type(key) == b"stream":
            for _id, fields in server.client().xrange(key):
                assert SECRET.encode() not in b" ".join(fields.values())
    reliability.add(f"secrets-{command}", area="secrets",
                    fault="password in URL, ?password=, REDIS_URL, REDIS_PASSWORD, "
                    "--password-file; wrong password; unreachable server; --json; --debug",
                    command=" ".join(argv),
                    did=f"{len(tried)} runs: working (exit 0/1), refused or unreachable (exit 3), "
                    "--debug tracebacks",
                    verified="the password appears in no stdout, stderr or traceback")


def test_lint_and_schema_never_print_a_password_written_in_the_policy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        reliability: Recorder) -> None:  # noqa: F811
    path = shop.write_policy(tmp_path)
    text = path.read_text().replace("redis: {key_prefix: shop}",
                                    f"redis: {{key_prefix: shop, url: 'redis://:{SECRET}@h:1/0'}}")
    path.write_text(text)
    for argv in (["lint", str(path)], ["lint", "--json", str(path)],
                 ["lint", "--format", "sarif", str(path)], ["lint", "--debug", str(path)],
                 ["schema"]):
        if not _available(argv):
            continue
        code, output = _run(argv, capsys, monkeypatch, {})
        assert code in (0, 1), (argv, output)
        assert SECRET not in output, f"{argv} printed the password:\n{output}"
    reliability.add("secrets-lint", area="secrets",
                    fault="a password written into the policy's redis.url",
                    command="lint (text, json, sarif, --debug); schema",
                    did="lint ran (exit 0/1)", verified="the password appears in no output")
