"""No password is ever printed: every command, with the password in the URL, in
REDIS_PASSWORD, in --password-file and in the policy, with --json and --debug, against a
working server, a wrong password and an unreachable one."""

from __future__ import annotations

import importlib.util
import json
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachectl.cli import main
from tests.support import shop
from tests.support.http_source import Api, serve
from tests.support.redis_server import RedisServer, free_port
from tests.support.reliability import Recorder

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
        reliability: Recorder) -> None:
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
        reliability: Recorder) -> None:
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


# --------------------------------------------------------------- passwords a URL cannot carry

# letters rare in cachectl's output, digits, and what base64 and password generators add;
# the URL delimiters (/ # ? @ :) are the point: a URL parser splits the password at them
_PW_LETTERS = "QXZJqxzjVK"
PASSWORDS = st.text(alphabet=_PW_LETTERS + "0123456789/#?@:+=%! ", min_size=8, max_size=24) \
    .filter(lambda pw: sum(c in _PW_LETTERS for c in pw) >= 4 and pw.strip() == pw)


def leaked_piece(password: str, output: str) -> str | None:
    """A piece of ``password`` (4+ characters, 2+ of its letters) that ``output`` holds."""
    for size in range(len(password), 3, -1):
        for start in range(len(password) - size + 1):
            piece = password[start:start + size]
            if sum(c in _PW_LETTERS for c in piece) >= 2 and piece in output:
                return piece
    return None


FUZZ_COMMANDS = [["inspect"], ["inspect", "--json"], ["stats", "--format", "prometheus",
                                                      "--interval", "100ms"],
                 ["stats", "--json", "--interval", "100ms"], ["audit", "--json"],
                 ["flush", "-n", "price", "--yes", "--json"], ["warm", "-n", "product", "--json"]]


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path_factory.mktemp("fuzz-redis")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def interpolating_policy(tmp_path_factory: pytest.TempPathFactory,
                         acl_server: RedisServer) -> Path:
    """The shop policy with the form lint's hint recommends: a password from the environment."""
    path = shop.write_policy(tmp_path_factory.mktemp("fuzz-policy"))
    url = f"redis://fuzz:${{REDIS_PASSWORD}}@127.0.0.1:{acl_server.port}/0"
    path.write_text(path.read_text().replace("redis: {key_prefix: shop}",
                                             f"redis: {{key_prefix: shop, url: '{url}'}}"))
    return path


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(password=PASSWORDS, command=st.sampled_from(FUZZ_COMMANDS),
       form=st.sampled_from(["raw-url", "encoded-url", "interpolated", "env", "password-file",
                             "unreachable", "wrong-user"]),
       debug=st.booleans())
def test_no_byte_of_a_random_password_is_printed_whatever_the_url(
        password: str, command: list[str], form: str, debug: bool, acl_server: RedisServer,
        policy: Path, interpolating_policy: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        reliability: Recorder) -> None:
    acl_server.client().execute_command(
        "ACL", "SETUSER", "fuzz", "reset", "on", f">{password}", "~*", "&*", "+@all")
    host = f"127.0.0.1:{acl_server.port}"
    env: dict[str, str] = {}
    args: list[str] = ["--policy", str(policy)]
    if form == "raw-url":
        args += ["--url", f"redis://fuzz:{password}@{host}/0"]
    elif form == "encoded-url":
        args += ["--url", f"redis://fuzz:{quote(password, safe='')}@{host}/0"]
    elif form == "interpolated":
        args = ["--policy", str(interpolating_policy)]
        env["REDIS_PASSWORD"] = password
    elif form == "env":
        args += ["--url", f"redis://fuzz@{host}/0"]
        env["REDIS_PASSWORD"] = password
    elif form == "password-file":
        pw_file = tmp_path / "pw"
        pw_file.write_text(password + "\n")
        args += ["--url", f"redis://fuzz@{host}/0", "--password-file", str(pw_file)]
    elif form == "unreachable":
        args += ["--url", f"redis://fuzz:{password}@127.0.0.1:{free_port()}/0",
                 "--timeout", "0.5"]
    else:  # the right password for a user that does not exist: refused
        args += ["--url", f"redis://nobody:{quote(password, safe='')}@{host}/0"]
    argv = [*command, *args] + (["--debug"] if debug else [])
    code, output = _run(argv, capsys, monkeypatch, env)
    assert code in ({-1} if debug else set()) | {0, 1, 2, 3}, (argv, code, output)
    piece = leaked_piece(password, output)
    assert piece is None, f"{argv} {form} printed {piece!r} of {password!r}:\n{output}"
    if form == "encoded-url" and not debug:
        assert code in (0, 1), output  # the percent-encoded form of any password works
    reliability.add("secrets-fuzz-url-passwords", area="secrets",
                    fault="random passwords holding / # ? @ : % + = and spaces, in a raw or "
                    "percent-encoded URL, through ${REDIS_PASSWORD} in the policy, REDIS_PASSWORD, "
                    "--password-file; refused and unreachable servers; --json, --debug",
                    command="inspect, stats --format prometheus, stats/audit/flush/warm --json",
                    did="exit 0/1 with an encoded password; exit 2 naming the character to "
                    "encode for a raw one; exit 3 when refused or unreachable",
                    verified="no piece of 4+ characters of the password appears in stdout, "
                    "stderr or the --debug traceback (hypothesis, 120 examples)")


def test_an_illegal_character_in_the_password_is_named_not_quoted(
        policy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        reliability: Recorder) -> None:
    password = "QxZj/9#k?Vq@K"
    code, output = _run(["inspect", "--policy", str(policy), "--url",
                         f"redis://:{password}@127.0.0.1:1/0"], capsys, monkeypatch, {})
    assert code == 2
    assert "redis://:***@127.0.0.1:1/0 is not a valid Redis URL" in output
    assert "percent-encode" in output and "REDIS_PASSWORD" in output
    assert leaked_piece(password, output) is None
    reliability.add("secrets-url-illegal-password", area="secrets",
                    fault="a password holding / # ? @ written raw in --url",
                    command="inspect", did="exit 2: the URL, redacted, is not a valid Redis "
                    "URL; the hint says to percent-encode or use REDIS_PASSWORD",
                    verified="no piece of the password in the output")


# --------------------------------------------------------------- the http warm source's secrets

HTTP_TOKEN = "QxZjVk-api-token-93"
HTTP_PASSWORD = "QxZjVk-basic-pw-17"


def _http_policy(folder: Path, url: str) -> Path:
    path = folder / "cachectl.yaml"
    path.write_text(f"""\
version: 1
redis: {{key_prefix: shop}}
defaults: {{ttl: 10m}}
namespaces:
  product:
    key: "product:{{id}}"
    warm:
      source:
        type: http
        url: "{url}"
        env_headers: {{X-Api-Key: API_KEY, Authorization: {{var: API_KEY, prefix: "Bearer "}}}}
        retries: 0
        timeout: 2
""")
    return path


def test_http_secret_headers_never_follow_a_redirect_to_another_origin(
        tmp_path: Path, server: RedisServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, reliability: Recorder) -> None:
    items = [{"id": i} for i in range(5)]
    with serve(Api(items)) as other, serve(Api(items)) as origin:
        origin.redirect_to = f"{other.url}/array"  # another port: another origin
        policy = _http_policy(tmp_path, f"{origin.url}/redirect")
        code, output = _run(["warm", "-n", "product", "--json", "--policy", str(policy),
                             "--url", f"redis://:{SECRET}@127.0.0.1:{server.port}/0"],
                            capsys, monkeypatch, {"API_KEY": HTTP_TOKEN})
        assert code == 0, output
        assert json.loads(output[output.index("{"):])["written"] == 5
        assert origin.headers_seen[0].get("X-Api-Key") == HTTP_TOKEN  # its own origin has it
        seen = other.headers_seen[0]
        assert "X-Api-Key" not in seen and "Authorization" not in seen, seen
        # back on the same origin, a redirect keeps them
        origin.redirect_to = "/array"
        code, output = _run(["warm", "-n", "product", "--policy", str(policy), "--url",
                             f"redis://:{SECRET}@127.0.0.1:{server.port}/0"],
                            capsys, monkeypatch, {"API_KEY": HTTP_TOKEN})
        assert code == 0, output
        assert origin.headers_seen[-1].get("X-Api-Key") == HTTP_TOKEN
    reliability.add("secrets-http-cross-origin-redirect", area="secrets",
                    fault="the http source's origin redirects (302) to another origin",
                    command="warm -n product",
                    did="followed the redirect without the env_headers (X-Api-Key, "
                    "Authorization); a same-origin redirect keeps them",
                    verified="the other origin received neither header; the rows were written")


def test_http_source_credentials_are_never_printed(
        tmp_path: Path, server: RedisServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, reliability: Recorder) -> None:
    items = [{"id": i} for i in range(3)] + [["not an object"]]
    redis_url = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    with serve(Api(items)) as api:
        host = api.url.removeprefix("http://")
        runs = []
        for path, extra in (("/array", []), ("/array", ["--json"]), ("/nowhere", []),
                            ("/nowhere", ["--json"]), ("/loop", []), ("/array", ["--debug"])):
            policy = _http_policy(tmp_path, f"http://reader:{HTTP_PASSWORD}@{host}{path}")
            runs.append(_run(["warm", "-n", "product", "--policy", str(policy), "--url",
                              redis_url, *extra], capsys, monkeypatch, {"API_KEY": HTTP_TOKEN}))
    dead = _http_policy(tmp_path, f"http://reader:{HTTP_PASSWORD}@127.0.0.1:{free_port()}/x")
    runs.append(_run(["warm", "-n", "product", "--policy", str(dead), "--url", redis_url],
                     capsys, monkeypatch, {"API_KEY": HTTP_TOKEN}))
    codes = [code for code, _ in runs]
    assert codes == [1, 1, 2, 2, 2, 1, 3], runs  # the unreachable one: exit 3
    for _code, output in runs:
        for secret in (HTTP_PASSWORD, HTTP_TOKEN, SECRET):
            assert secret not in output, output
    assert "http://reader:***@" in runs[1][1]  # --json's source, redacted
    reliability.add("secrets-http-source-url", area="secrets",
                    fault="user:password in the http source's URL and an API key in "
                    "env_headers: rows written, a 404, a redirect loop, an unreachable server",
                    command="warm -n product (text, --json, --debug)",
                    did="exit 1 (one bad row), 2 (the source refused) or 3 (unreachable), the "
                    "source shown as http://reader:***@host/…",
                    verified="neither the URL's password, the API key nor the Redis password "
                    "appears in any output")
