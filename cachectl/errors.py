"""Exit codes and the exception tree every command and the library raise.

    CachectlError                 base; carries an exit code and a hint
    ├── UsageError                exit 2: a bad flag, argument or combination
    │   ├── KeyParamError         a key placeholder value is missing or cannot be one segment
    │   │                         (also a ValueError)
    │   └── ValueTooLargeError    a value serialises to more than max_value_bytes
    ├── PolicyError               exit 2: the policy file is unreadable or invalid
    ├── SourceError               exit 2: a warm source cannot be opened or read
    │   └── SourceUnavailableError
    │                             exit 3: the source's server cannot be reached (a database
    │                             down, an HTTP API failing after its retries)
    ├── RedisUnavailableError     exit 3: unreachable, timed out, auth/TLS/ACL refused
    ├── LoadTimeoutError          the library waited hard_timeout_ms for another caller's
    │                             load of the same key (also a TimeoutError)
    └── InterruptedWork           exit 130: stopped by the user; what was done is complete

Core code raises these; only ``cachectl.cli.main`` turns them into ``error:`` /
``hint:`` lines and an exit code. Messages never contain a password: every URL
goes through ``cachectl.connection.redact_url`` first.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cachectl.diagnostics import Diagnostic


# the name on the package index ("cachectl" there is an unrelated tool); the command is `cachectl`
DISTRIBUTION = "cachectl-redis"


# top-level module of an optional dependency -> the extra that installs it
EXTRA_OF_MODULE = {"orjson": "fast", "hiredis": "fast", "fakeredis": "demo", "sqlalchemy": "sql",
                   "psycopg": "sql", "httpx": "http", "matplotlib": "plot", "zstandard": "compress",
                   "lz4": "compress", "opentelemetry": "otel", "numba": "model", "numpy": "model"}


def install_extra_hint(extra: str) -> str:
    """The pip command that installs one optional extra, for hints."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def missing_module_hint(module: str) -> str:
    """What to install when importing ``module`` (a dependency, not cachectl's own) failed."""
    extra = EXTRA_OF_MODULE.get(module.partition(".")[0])
    if extra:
        return install_extra_hint(extra)
    return f"reinstall cachectl: pip install --force-reinstall '{DISTRIBUTION}'"


class ExitCode(IntEnum):
    """The exit codes of every cachectl command (docs/design.md)."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    REDIS = 3
    BUG = 70
    INTERRUPTED = 130


class CachectlError(Exception):
    """Base of every error cachectl raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE
    partial: Any = None  # the result of the work done before the error, when there is one

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CachectlError):
    """The invocation is wrong: an unknown namespace, a bad flag value, a refused combination."""

    exit_code = ExitCode.USAGE


class KeyParamError(UsageError, ValueError):
    """A placeholder value that is missing or cannot form one key segment."""


class ValueTooLargeError(UsageError):
    """A value serialises to more than its namespace's ``max_value_bytes``."""


class PolicyError(CachectlError):
    """The policy cannot be used; ``diagnostics`` says where and why."""

    exit_code = ExitCode.USAGE

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        diagnostics: tuple[Diagnostic, ...] = (),
    ) -> None:
        super().__init__(message, hint)
        self.diagnostics = diagnostics


class SourceError(CachectlError):
    """A warm source cannot be opened or read as a whole (a bad row is not an error)."""

    exit_code = ExitCode.USAGE


class SourceUnavailableError(SourceError):
    """A source's server cannot be reached: a database refusing connections, an HTTP API
    that still fails after its retries (exit 3, as Redis unreachable is)."""

    exit_code = ExitCode.REDIS


class RedisUnavailableError(CachectlError):
    """Redis cannot be used: unreachable, timed out, or refused auth, TLS or a permission."""

    exit_code = ExitCode.REDIS


class LoadTimeoutError(CachectlError, TimeoutError):
    """A caller waited ``hard_timeout_ms`` for another caller's load of the same key."""

    exit_code = ExitCode.REDIS  # a source (the origin another caller is loading from) was too slow


class InterruptedWork(CachectlError):
    """The user stopped the command; ``partial`` holds the result of what was done."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, partial: Any = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.partial = partial
