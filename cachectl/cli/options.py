"""Options shared by commands, and the small glue every command body uses.

``@redis_options`` adds the connection flags (--url, --tls-*, --password-file,
--cluster, --sentinel, --master-name, --timeout) to a command and hands them to it
as one ``conn: RedisOptions`` argument, so each command states them once.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
import threading
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from cachectl.connection import ConnectionSettings
    from cachectl.policy import Policy

DEFAULT_POLICY = "cachectl.yaml"

PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", "-p", envvar="CACHECTL_POLICY", show_envvar=True, metavar="PATH",
                 help="Policy file [default: ./cachectl.yaml]."),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (messages go to stderr).")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Count and show; change nothing.")]
# inspect and audit: how the keyspace is read
ScanRateOpt = Annotated[
    float | None, typer.Option("--rate", metavar="N", help="Scan at most N keys per second.")]
NoLuaOpt = Annotated[bool, typer.Option(
    "--no-lua", help="Measure with pipelined commands instead of a server-side script.")]
# flush and apply: how fast keys are changed
PaceRateOpt = Annotated[float | None, typer.Option(
    "--rate", metavar="N", help="At most N keys per second [default: paced by the server's "
    "latency].")]
BatchOpt = Annotated[int, typer.Option(
    "--batch", metavar="N", help="Keys per command batch and per SCAN (1..10000).")]
NamespaceOpt = Annotated[
    list[str] | None, typer.Option("--namespace", "-n", metavar="NS", help="A namespace (repeatable).")
]


@dataclass(frozen=True)
class RedisOptions:
    """The connection flags as given on the command line."""

    url: str | None = None
    password_file: Path | None = None
    cluster: bool = False
    sentinel: tuple[str, ...] = ()
    master_name: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    timeout: float | None = None

    def settings(self, policy: Policy | None = None) -> ConnectionSettings:
        """ConnectionSettings from these flags, the environment and the policy."""
        from cachectl.connection import build_settings

        return build_settings(
            url_flag=self.url,
            env=os.environ,
            policy_url=policy.redis_url if policy else None,
            policy_cluster=policy.cluster if policy else False,
            password_file=self.password_file,
            cluster=self.cluster,
            sentinels=self.sentinel,
            master_name=self.master_name,
            tls_ca=self.tls_ca,
            tls_cert=self.tls_cert,
            tls_key=self.tls_key,
            tls_insecure=self.tls_insecure,
            timeout_s=self.timeout,
        )

    def connect(self, policy: Policy | None = None) -> Any:
        """A connected client (PING answered); RedisUnavailableError otherwise."""
        from cachectl.connection import connect

        return connect(self.settings(policy))


_REDIS_PARAMS = [
    inspect.Parameter("url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        str | None, typer.Option("--url", metavar="URL", help="Redis URL [default: REDIS_URL, the policy's "
                                 "redis.url, redis://localhost:6379/0].", rich_help_panel="Redis")]),
    inspect.Parameter("password_file", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[Path | None, typer.Option(
                          "--password-file", metavar="PATH", help="Read the password from this file "
                          "(else the URL or REDIS_PASSWORD).", rich_help_panel="Redis")]),
    inspect.Parameter("cluster", inspect.Parameter.KEYWORD_ONLY, default=False,
                      annotation=Annotated[bool, typer.Option(
                          "--cluster", help="Use the Redis Cluster client.",
                          rich_help_panel="Redis")]),
    inspect.Parameter("sentinel", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[list[str] | None, typer.Option(
                          "--sentinel", metavar="HOST:PORT", help="A Sentinel host:port (repeatable).",
                          rich_help_panel="Redis")]),
    inspect.Parameter("master_name", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
                          "--master-name", metavar="NAME", help="The Sentinel master's name.",
                          rich_help_panel="Redis")]),
    inspect.Parameter("tls_ca", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
                          "--tls-ca", metavar="PATH", help="CA bundle to verify the server (rediss://).",
                          rich_help_panel="Redis")]),
    inspect.Parameter("tls_cert", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
                          "--tls-cert", metavar="PATH", help="Client certificate.",
                          rich_help_panel="Redis")]),
    inspect.Parameter("tls_key", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
                          "--tls-key", metavar="PATH", help="Client private key.",
                          rich_help_panel="Redis")]),
    inspect.Parameter("tls_insecure", inspect.Parameter.KEYWORD_ONLY, default=False,
                      annotation=Annotated[bool, typer.Option(
                          "--tls-insecure", help="Do not verify the server's certificate.",
                          rich_help_panel="Redis")]),
    inspect.Parameter("timeout", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[float | None, typer.Option(
                          "--timeout", metavar="SECONDS",
                          help="Seconds to wait for Redis per command [default: 5].",
                          rich_help_panel="Redis")]),
]
_REDIS_NAMES = [p.name for p in _REDIS_PARAMS]

F = TypeVar("F", bound=Callable[..., Any])


def redis_options(func: F) -> F:
    """Add the connection flags to a command; it receives them as ``conn: RedisOptions``."""
    signature = inspect.signature(func)
    # resolve string annotations (`from __future__ import annotations` in the command's
    # module): Typer reads the wrapper's signature and cannot see that module's globals
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except NameError:  # a name imported only for type checking; the annotations are real ones
        hints = {}
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                        annotation=hints.get(p.name, p.annotation))
              for p in signature.parameters.values() if p.name != "conn"] + _REDIS_PARAMS

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _REDIS_NAMES}
        values["sentinel"] = tuple(values["sentinel"] or ())
        return func(conn=RedisOptions(**values), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def policy_path(flag: Path | None) -> Path:
    """``--policy``/CACHECTL_POLICY (Typer merges both), else ./cachectl.yaml."""
    return flag if flag is not None else Path(DEFAULT_POLICY)


def load_cli_policy(flag: Path | None) -> Policy:
    """Load the policy a command runs against; PolicyError (exit 2) if it is unusable."""
    from cachectl.policy import load_policy

    return load_policy(policy_path(flag), env=os.environ)


@contextmanager
def stop_on_sigint() -> Iterator[threading.Event]:
    """First Ctrl-C or SIGTERM: set the event (stop after the batch in flight); a second
    one aborts. SIGTERM is what ``timeout``, systemd, Kubernetes and CI cancellation send:
    it gets the same orderly stop (flush still writes its audit entry and summary)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        again = "Ctrl-C" if signum == signal.SIGINT else "another SIGTERM"
        name = "" if signum == signal.SIGINT else "SIGTERM: "
        sys.stderr.write(f"\n{name}stopping after the batch in flight ({again} to abort now)\n")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
