"""URL/env/policy -> a redis-py client (standalone, cluster, sentinel; TLS, ACL, timeouts).

Every error redis-py raises while connecting or running a command is turned into
``RedisUnavailableError`` (exit 3) by ``redis_errors``, with the server named by
its redacted URL and a hint. A password never reaches a message: URLs go through
``redact_url`` (plain text, no URL parsing: see ``cachectl.secrets``), every password
``build_settings`` sees is registered for the run, and redis-py's messages are scrubbed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.exceptions as rex
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import (
    MasterNotFoundError,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

from cachectl import secrets
from cachectl.errors import RedisUnavailableError, UsageError
from cachectl.files import read_secret_text
from cachectl.secrets import redact_url

__all__ = ["ConnectionSettings", "build_settings", "connect", "redact_url"]

DEFAULT_URL = "redis://localhost:6379/0"
_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to reach one Redis deployment. ``password`` never appears in repr."""

    url: str = DEFAULT_URL
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    cluster: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    connect_timeout_s: float = 2.0
    timeout_s: float = 5.0
    retries: int = 2
    client_name: str = "cachectl"

    @property
    def display(self) -> str:
        """The server as it may be printed: redacted URL, or the sentinel master."""
        if self.sentinels:
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"sentinel {hosts} master {self.master_name}"
        return redact_url(self.url)

    @property
    def tls(self) -> bool:
        """Speak TLS: a ``rediss://`` URL, or (through Sentinel) any ``--tls-*`` flag.

        Through Sentinel, TLS applies to the Sentinels and to the primary alike (a
        TLS deployment sets ``tls-port`` on both, and ``tls-replication yes``).
        """
        if self.url.lower().startswith("rediss://"):
            return True
        return bool(self.sentinels) and bool(
            self.tls_ca or self.tls_cert or self.tls_key or self.tls_insecure)

    @property
    def secrets(self) -> tuple[str, ...]:
        found = [self.password] if self.password else []
        return tuple(s for s in [*found, *secrets.url_secrets(self.url)] if s)


def resolve_url(flag: str | None, env: Mapping[str, str], policy_url: str | None) -> str:
    """``--url``, else ``REDIS_URL``, else the policy's ``redis.url``, else the default."""
    for candidate in (flag, env.get("REDIS_URL"), policy_url):
        if candidate:
            return candidate
    return DEFAULT_URL


def parse_sentinel(text: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); UsageError otherwise."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--sentinel {text!r} is not host:port", hint="e.g. --sentinel 10.0.0.5:26379")
    return host.strip("[]"), int(port)


def build_settings(
    *,
    url_flag: str | None,
    env: Mapping[str, str],
    policy_url: str | None = None,
    policy_cluster: bool = False,
    password_file: Path | None = None,
    cluster: bool = False,
    sentinels: tuple[str, ...] = (),
    master_name: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_insecure: bool = False,
    timeout_s: float | None = None,
) -> ConnectionSettings:
    """Combine flags, the environment and the policy into ConnectionSettings."""
    url = resolve_url(url_flag, env, policy_url)
    secrets.register_url(url)  # before anything can fail and print a piece of it
    secrets.register(env.get("REDIS_PASSWORD"))
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise UsageError(f"{redact_url(url)} is not a Redis URL",
                         hint="use redis://host:6379/0, rediss://… for TLS, or unix:///path.sock")
    url = scheme + url[len(scheme):]  # redis-py refuses REDIS:// (found by test_cli_fuzz)
    _check_url(url)
    password = None
    if password_file is not None:
        try:
            password = read_secret_text(password_file).strip()
        except OSError as exc:
            raise UsageError(f"cannot read --password-file {password_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--password-file {password_file} is not UTF-8 text",
                             hint="write the password as UTF-8 text on one line") from None
        secrets.register(password)
    elif env.get("REDIS_PASSWORD") and not secrets.url_secrets(url):
        password = env["REDIS_PASSWORD"]
    if sentinels and not master_name:
        raise UsageError("--sentinel needs --master-name", hint="e.g. --master-name mymaster")
    tls_flags = [name for name, value in (("--tls-ca", tls_ca), ("--tls-cert", tls_cert),
                                          ("--tls-key", tls_key), ("--tls-insecure", tls_insecure))
                 if value]
    if tls_flags and scheme != "rediss" and not sentinels:
        # redis-py would silently ignore them and connect in clear text
        verb = "needs" if len(tls_flags) == 1 else "need"
        raise UsageError(f"{', '.join(tls_flags)} {verb} a rediss:// URL, not {redact_url(url)}",
                         hint="write the URL as rediss://host:port/db to use TLS")
    if bool(tls_cert) != bool(tls_key):
        raise UsageError("--tls-cert and --tls-key go together",
                         hint="pass the client certificate and its private key")
    settings = ConnectionSettings(
        url=url,
        password=password,
        cluster=cluster or policy_cluster,
        sentinels=tuple(parse_sentinel(s) for s in sentinels),
        master_name=master_name,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_insecure=tls_insecure,
    )
    if timeout_s is not None:
        settings = replace(settings, timeout_s=timeout_s, connect_timeout_s=min(timeout_s, 5.0))
    return settings


# what a password cannot hold unencoded in a URL's userinfo ("@" can: the last one ends it)
_URL_ILLEGAL = re.compile(r"[/#?\s]")


def _check_url(url: str) -> None:
    """Refuse what redis-py would crash on (ValueError) or misread, with a usage error."""
    found = secrets.url_secrets(url)
    if _URL_ILLEGAL.search(secrets.userinfo_password(url) or ""):
        # a parser takes part of such a password for the host, port or path: a message
        # built from its pieces would quote them, and "bad port" would not say what is wrong
        raise UsageError(
            f"{redact_url(url)} is not a valid Redis URL: its password holds a character "
            "a URL cannot carry as is (/, #, ? or a space)",
            hint="percent-encode them (/ as %2F, # as %23, ? as %3F), or give the password "
            "in REDIS_PASSWORD or --password-file instead")
    try:
        parts = urlsplit(url)
        port = parts.port
        if parts.scheme != "unix":
            redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        text = secrets.scrub(str(exc), found)
        raise UsageError(f"{redact_url(url)} is not a valid Redis URL: {text}",
                         hint="e.g. redis://user:password@host:6379/0") from None
    if port == 0:
        raise UsageError(f"{redact_url(url)} has port 0", hint="e.g. redis://host:6379/0")


def client_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    """Keyword arguments shared by every client class (timeouts, retry, TLS, auth)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.timeout_s,
        "socket_connect_timeout": settings.connect_timeout_s,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), settings.retries),
        "retry_on_error": [rex.ConnectionError, rex.TimeoutError],
        "client_name": settings.client_name,
        # no health_check_interval: its PING runs inside connect() under the same Retry, so
        # the retries nest and a paused server held a connect for 3 s at --timeout 0.3
        # (tests/integration/test_faults.py); retry_on_error already replaces dead sockets
    }
    if settings.password is not None:
        kwargs["password"] = settings.password
    if settings.tls:
        if settings.tls_ca:
            kwargs["ssl_ca_certs"] = settings.tls_ca
        if settings.tls_cert:
            kwargs["ssl_certfile"] = settings.tls_cert
        if settings.tls_key:
            kwargs["ssl_keyfile"] = settings.tls_key
        if settings.tls_insecure:
            kwargs["ssl_cert_reqs"] = "none"
            kwargs["ssl_check_hostname"] = False
    return kwargs


def create_client(settings: ConnectionSettings) -> Any:
    """A client for the deployment, not yet connected (see ``connect``)."""
    kwargs = client_kwargs(settings)
    if settings.sentinels:
        from redis.sentinel import Sentinel

        for_sentinels, for_primary = sentinel_kwargs(settings, kwargs)
        # the Sentinels are redundant: ask the next one rather than retrying a dead one
        # (redis-py's default retries made an unreachable Sentinel cost ~9s at --timeout 1)
        for_sentinels["retry"] = _no_retry()
        # newer redis-py releases annotate Sentinel, older ones do not: the ignore may be unused
        sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            list(settings.sentinels), sentinel_kwargs=for_sentinels, **for_primary)
        return sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
            settings.master_name or "mymaster",
            connection_class=_sentinel_connection_class(settings.tls))
    if settings.cluster:
        from redis.cluster import RedisCluster

        kwargs.pop("retry_on_error", None)
        kwargs.pop("health_check_interval", None)
        return RedisCluster.from_url(settings.url, **kwargs)
    return redis.Redis.from_url(settings.url, **kwargs)


def _no_retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.2, base=0.05), 0)


def sentinel_kwargs(settings: ConnectionSettings,
                    kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword arguments for the Sentinels, for the primary) from ``client_kwargs``.

    The Sentinels get the timeouts and, with TLS, the same TLS options as the primary
    (no credentials: a Sentinel's own password is not the data nodes'). The primary also
    gets the URL's user, password and database (``redis://user:pw@ignored/0``): the
    host and port come from the Sentinels, but an ACL user must still reach the primary.
    """
    for_sentinels = {k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout")}
    for_primary = dict(kwargs)
    if settings.tls:
        tls = {k: v for k, v in kwargs.items() if k.startswith("ssl_")}
        for_sentinels.update(ssl=True, **tls)
        for_primary["ssl"] = True  # redis-py's SentinelConnectionPool picks its SSL class
    if "://" in settings.url and not settings.url.lower().startswith("unix://"):
        parsed = redis.connection.parse_url(settings.url)  # type: ignore[no-untyped-call]
        for name in ("username", "password", "db"):
            if parsed.get(name) is not None:
                for_primary[name] = parsed[name]
    return for_sentinels, for_primary


def _sentinel_connection_class(tls: bool) -> type:
    """SentinelManagedConnection (SSL or not) that asks the Sentinels on every (re)connect.

    redis-py 8 reconnects inside a command's retries through ``connect_check_health``,
    which SentinelManagedConnection does not override: after a failover the retry went
    back to the demoted primary ("The previous master is now a slave") until the
    command failed. Resolving the primary there makes the retry reach the new one.
    """
    return _SentinelPrimarySSLConnection if tls else _SentinelPrimaryConnection


class _ResolvePrimaryOnConnect:
    """Mixin for SentinelManagedConnection: see ``_sentinel_connection_class``."""

    _sock: Any
    connection_pool: Any
    host: str
    port: int

    def connect_check_health(self, check_health: bool = True,
                             retry_socket_connect: bool = True) -> None:
        if not self._sock and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(  # type: ignore[misc]
            check_health=check_health, retry_socket_connect=retry_socket_connect)


class _SentinelPrimaryConnection(_ResolvePrimaryOnConnect, SentinelManagedConnection):
    pass


class _SentinelPrimarySSLConnection(_ResolvePrimaryOnConnect, SentinelManagedSSLConnection):
    pass


def connect(settings: ConnectionSettings) -> Any:
    """A client that has answered PING; raises RedisUnavailableError.

    A URL naming a Redis Cluster node gets the cluster client even without --cluster:
    a standalone client would SCAN one node only and report a third of the keyspace
    as if it were all of it.
    """
    with redis_errors(settings):
        try:
            client = create_client(settings)
            client.ping()
            if not settings.cluster and not settings.sentinels and is_cluster_node(client):
                client.close()
                settings = replace(settings, cluster=True)
                client = create_client(settings)
                client.ping()
        except rex.RedisClusterException:
            # redis-py hides the reason (a NOPERM, a non-cluster server) behind one message
            _diagnose_cluster_seed(settings)
            raise
        except MasterNotFoundError:
            # redis-py 8 reduces each Sentinel's error to "network:ConnectionError"
            _diagnose_sentinels(settings)
            raise
    return client


def is_cluster_node(client: Any) -> bool:
    """Whether the server runs in cluster mode (HELLO's ``mode``; HELLO needs no ACL rule)."""
    try:
        reply = client.execute_command("HELLO")
    except rex.ResponseError:  # Redis < 6 has no HELLO: such a server is told by MOVED later
        return False
    if isinstance(reply, list):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    mode = reply.get(b"mode", reply.get("mode")) if isinstance(reply, dict) else None
    return mode in (b"cluster", "cluster")


def detect_cluster(settings: ConnectionSettings) -> ConnectionSettings:
    """``settings`` with ``cluster=True`` if the URL names a Redis Cluster node.

    For clients built without ``connect`` (the library): one short-lived connection asks
    ``is_cluster_node``, with the connect timeout as its reply timeout too (a library
    socket timeout of a few milliseconds is meant for cache reads, not for this). A
    server that cannot be reached is taken to be what the settings say: the library must
    be buildable while Redis is down (set ``redis.cluster: true`` to cover that case).
    """
    if settings.cluster or settings.sentinels or settings.url.lower().startswith("unix://"):
        return settings
    probe_settings = replace(settings, retries=0,
                             timeout_s=max(settings.timeout_s, settings.connect_timeout_s))
    try:
        probe = redis.Redis.from_url(settings.url, **client_kwargs(probe_settings))
    except (rex.RedisError, OSError, ValueError):
        return settings
    try:
        if is_cluster_node(probe):
            return replace(settings, cluster=True)
    except (rex.RedisError, OSError):
        pass
    finally:
        probe.close()
    return settings


def _diagnose_cluster_seed(settings: ConnectionSettings) -> None:
    """Ask the seed node for its slot map directly, to raise the real reason."""
    kwargs = client_kwargs(settings)
    seed = redis.Redis.from_url(settings.url, **kwargs)
    try:
        seed.ping()
        seed.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
    except rex.ResponseError as exc:
        if "cluster support disabled" in str(exc):
            raise RedisUnavailableError(
                f"{settings.display} is not a Redis Cluster node",
                hint="drop --cluster (and redis.cluster in the policy) for a standalone server",
            ) from None
        raise
    except (rex.RedisError, OSError):
        pass  # unreachable: the cluster client's own error says so
    finally:
        seed.close()


def _diagnose_sentinels(settings: ConnectionSettings) -> None:
    """When no Sentinel named the primary: if none answers PING, raise the first reason.

    A TLS failure (wrong CA, TLS-only Sentinels reached in clear text) is preferred, as
    it is the one the user can fix with a flag. If one Sentinel answers, the master name
    is what is wrong and the caller's MasterNotFoundError stands.
    """
    for_sentinels, _ = sentinel_kwargs(settings, client_kwargs(settings))
    for_sentinels["retry"] = _no_retry()  # one try each, as in the discovery itself
    failures: list[BaseException] = []
    for host, port in settings.sentinels:
        sentinel = redis.Redis(host=host, port=port, **for_sentinels)
        try:
            sentinel.ping()
            return
        except (rex.RedisError, OSError) as exc:
            failures.append(exc)
        finally:
            sentinel.close()
    tls = [f for f in failures if _is_tls_failure(f, str(f))]
    raise (tls or failures)[0]


def primaries(client: Any) -> list[Any]:
    """One standalone client per primary: every node of a cluster, or the client itself."""
    get_primaries = getattr(client, "get_primaries", None)
    if get_primaries is None:
        return [client]
    nodes = []
    for node in get_primaries():
        if node.redis_connection is None:
            client.nodes_manager.create_redis_connections([node])
        nodes.append(node.redis_connection)
    return nodes


def node_name(node_client: Any) -> str:
    """``host:port`` of a standalone client (for per-node figures)."""
    kw = node_client.connection_pool.connection_kwargs
    if "path" in kw:
        return str(kw["path"])
    return f"{kw.get('host', '?')}:{kw.get('port', '?')}"


@contextmanager
def redis_errors(settings: ConnectionSettings) -> Iterator[None]:
    """Turn redis-py's exceptions into RedisUnavailableError naming the server."""
    try:
        yield
    except (rex.RedisError, rex.RedisClusterException) as exc:
        # RedisClusterException (e.g. SlotNotCoveredError during a failover) is not a RedisError
        error = describe_error(exc, settings)
        error.partial = getattr(exc, "partial", None)  # what the work had done (flush)
        raise error from None
    except OSError as exc:  # e.g. a TLS file that cannot be read
        raise describe_error(exc, settings) from None


def describe_error(exc: BaseException, settings: ConnectionSettings) -> RedisUnavailableError:
    """One plain message and a hint for a redis-py error; passwords scrubbed."""
    where = settings.display
    text = secrets.scrub(str(exc), settings.secrets)
    if isinstance(exc, rex.NoPermissionError) or "NOPERM" in text:
        return RedisUnavailableError(
            f"{where}: permission denied: {text}",
            hint="the ACL user lacks a permission this command needs; "
            "see docs/topologies.md, 'Least-privilege ACL'")
    if isinstance(exc, rex.AuthenticationError | rex.AuthenticationWrongNumberOfArgsError) or (
            "WRONGPASS" in text or "NOAUTH" in text or "invalid password" in text):
        return RedisUnavailableError(
            f"{where}: authentication refused",
            hint="check the user and password (in the URL, REDIS_PASSWORD or --password-file)")
    if exc.__class__.__name__ == "MasterNotFoundError":
        # redis-py appends the repr of every Sentinel client it tried: keep the first clause
        return RedisUnavailableError(
            f"{where}: {text.split(' : ', 1)[0]}",
            hint="check --master-name and that the --sentinel addresses are Sentinels that are up")
    if isinstance(exc, rex.TimeoutError):
        return RedisUnavailableError(
            f"{where}: timed out after {settings.timeout_s:g}s ({text or 'no reply'})",
            hint="the server is overloaded, paused or unreachable; raise --timeout to wait longer")
    if _is_tls_failure(exc, text):
        hint = "check --tls-ca/--tls-cert/--tls-key, or that the server speaks TLS (rediss://)"
        if "EOF occurred" in text or "alert" in text.lower():
            hint = ("the server closed the TLS handshake: it may require a client certificate "
                    "(--tls-cert/--tls-key) signed by a CA it trusts")
        elif "CERTIFICATE_VERIFY_FAILED" in text:
            hint = ("the server's certificate is not signed by --tls-ca (or the system CAs); "
                    "pass the right --tls-ca, or --tls-insecure to skip verification")
        return RedisUnavailableError(f"{where}: TLS failed: {text}", hint=hint)
    if isinstance(exc, rex.MovedError | rex.AskError) or text.startswith(("MOVED ", "ASK ")):
        return RedisUnavailableError(
            f"{where} is a Redis Cluster node (it redirected a key to another node)",
            hint="pass --cluster, or set redis.cluster: true in the policy")
    if isinstance(exc, rex.SlotNotCoveredError | rex.ClusterDownError) or (
            "CLUSTERDOWN" in text):
        return RedisUnavailableError(
            f"{where}: the cluster cannot serve every slot ({text or 'cluster down'})",
            hint="a primary failed and no replica has taken over yet; rerun once "
            "CLUSTER INFO says cluster_state:ok")
    if isinstance(exc, rex.RedisClusterException):
        return RedisUnavailableError(
            f"cannot use the cluster at {where}: {text}",
            hint="check that the nodes are up and that --url names one of them")
    if isinstance(exc, rex.ReadOnlyError):
        return RedisUnavailableError(f"{where}: the server is a read-only replica",
                                     hint="point --url at the primary")
    if isinstance(exc, rex.BusyLoadingError):
        return RedisUnavailableError(f"{where}: the server is loading its dataset",
                                     hint="wait for it to finish loading and rerun")
    if isinstance(exc, rex.ConnectionError | OSError):
        hint = "is Redis running there? pass --url or set REDIS_URL"
        if settings.sentinels:
            hint = "are the Sentinels up at the --sentinel addresses?"
        if "reset by peer" in text and not settings.tls:
            hint += "; a TLS-only server resets plain connections: use rediss://"
            if settings.sentinels:
                hint += " or --tls-ca (TLS to the Sentinels and the primary)"
        if settings.cluster:
            hint = ("a cluster node stopped answering (failing over?); rerun once CLUSTER INFO "
                    "says cluster_state:ok: the work done so far is complete")
        return RedisUnavailableError(f"cannot connect to {where}: {text}", hint=hint)
    return RedisUnavailableError(f"{where}: {type(exc).__name__}: {text}")


def _is_tls_failure(exc: BaseException, text: str) -> bool:
    import ssl

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "SSL" in text or "_ssl.c" in text or "certificate" in text.lower() or "TLS" in text
