"""CP406/CP407: redis.url must be a Redis URL, and must not carry a password written in the file."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from cachectl.diagnostics import Code
from cachectl.lint.context import LintContext

SCHEMES = ("redis", "rediss", "unix")
_MASK = "\x00"  # stands for text that comes from the environment
_VAR_RE = re.compile(r"\$\$\{|\$\{[A-Za-z_][A-Za-z0-9_]*(?::-(?P<default>[^}]*))?\}")


def check(ctx: LintContext) -> None:
    url = ctx.spec.redis.url
    if url is None:
        return
    at = ctx.value("redis", "url")
    raw = ctx.spans.raw.get(("redis", "url"), url)
    if url.strip() and not _valid(url):
        # never echo the URL: it may hold a password
        ctx.report(Code.INVALID_REDIS_URL, "redis.url is not a redis://, rediss:// or unix:// URL", at,
                   "e.g. redis://localhost:6379/0, rediss://host:6380/0 or unix:///run/redis.sock")
    if _literal_password(raw):
        ctx.report(Code.SECRET_IN_POLICY, "redis.url holds a password written into the policy", at,
                   "leave it out of the URL and set REDIS_PASSWORD (sent as the password, "
                   "any character allowed), or pass --url / REDIS_URL")


def _valid(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if parts.scheme not in SCHEMES:
        return False
    return bool(parts.path) if parts.scheme == "unix" else bool(parts.hostname)


def literal_text(raw: str) -> str:
    """The URL as written, with every ``${VAR}`` masked and ``${VAR:-default}`` -> default.

    A default is literal text in the file, so a password there is still a secret in it.
    """
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        return m.group("default") if m.group("default") is not None else _MASK
    return _VAR_RE.sub(repl, raw)


def _literal_password(raw: str) -> bool:
    try:
        password = urlsplit(literal_text(raw)).password
    except ValueError:
        return False
    return bool(password) and _MASK not in (password or "")
