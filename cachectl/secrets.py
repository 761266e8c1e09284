"""Secrets never printed: URL redaction by plain text, and the run's registry of secrets.

Redaction does not parse URLs. A password taken from a URL by ``urllib`` is wrong as
soon as it holds a character a URL's userinfo may not (``/``, ``#``, ``?``, a raw
``@``, as base64-made passwords often do): the parser then sees part of the password
as the host, port or path, and a message built from its pieces printed them. Here the
userinfo is everything between ``://`` and the *last* ``@`` of the text, whatever it
holds, so a malformed URL is redacted as well as a valid one (at worst too much).

Whoever learns a secret (the connection settings, a warm source's headers or URL)
``register``s it; ``cachectl.cli.main`` scrubs every registered secret, its
percent-encoded and -decoded forms and its URL-delimited pieces, out of everything the
run writes to stdout and stderr and out of the exceptions ``--debug`` shows. The
registry is cleared at the start of each run (``reset``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import IO, Any
from urllib.parse import quote, unquote

MASK = "***"
# a secret this short would mask ordinary words: it is still kept out of URLs (redact_url)
MIN_SECRET = 3
# pieces of a secret between URL delimiters: what a URL parser shows of a malformed one
_DELIMITERS = re.compile(r"[/#?@:\s]+")
MIN_PIECE = 4
_QUERY_SECRET = re.compile(r"(?i)((?:password|passwd|pass|token|secret|api_key|apikey)=)[^&#\s]*")

_lock = threading.Lock()
_registered: set[str] = set()
_registered_needles: list[str] = []  # _needles(_registered), kept with it


def _userinfo_span(url: str) -> tuple[int, int] | None:
    """(start, end) of the userinfo: from after ``://`` to the last ``@``; None if absent."""
    start = url.find("://")
    if start < 0:
        return None
    start += 3
    end = url.rfind("@")
    if end < start:
        return None
    return start, end


def userinfo_password(url: str) -> str | None:
    """The password of the URL's userinfo as written (``user:password@``), or None."""
    span = _userinfo_span(url)
    if span is None:
        return None
    _user, colon, password = url[span[0]:span[1]].partition(":")
    return password if colon else None


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a URL holds (its userinfo's password, ``?password=`` values), as written."""
    found = [userinfo_password(url) or ""]
    found += [m.group(0).partition("=")[2] for m in _QUERY_SECRET.finditer(url)]
    return tuple(s for s in found if s)


def redact_url(url: str) -> str:
    """The URL with every password replaced by ``***``; never fails, whatever the text."""
    span = _userinfo_span(url)
    if span is not None:
        userinfo = url[span[0]:span[1]]
        if ":" in userinfo:
            userinfo = userinfo.partition(":")[0] + ":" + MASK
        url = url[:span[0]] + userinfo + url[span[1]:]
    return _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, url)


def forms(secret: str) -> set[str]:
    """A secret as it may appear: as given, percent-decoded, percent-encoded."""
    return {secret, unquote(secret), quote(secret, safe=""), quote(secret)}


def register(*secrets: str | None) -> None:
    """Remember secrets for this run: ``scrub`` removes them from any text."""
    with _lock:
        for secret in secrets:
            if secret:
                _registered.update(forms(secret))
        _registered_needles[:] = _needles(_registered)


def register_url(url: str) -> None:
    register(*url_secrets(url))


def reset() -> None:
    """Forget every registered secret (a new run)."""
    with _lock:
        _registered.clear()
        _registered_needles.clear()


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_registered)


def _needles(secrets: Iterable[str]) -> list[str]:
    needles: set[str] = set()
    for secret in secrets:
        for form in forms(secret):
            if len(form) >= MIN_SECRET:
                needles.add(form)
            needles.update(p for p in _DELIMITERS.split(form) if len(p) >= MIN_PIECE)
    return sorted(needles, key=len, reverse=True)  # longest first: a piece inside a whole


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered secret (and ``extra``), whole or in pieces, masked."""
    extra = list(extra)
    with _lock:
        needles = _needles([*_registered, *extra]) if extra else list(_registered_needles)
    for needle in needles:
        if needle in text:
            text = text.replace(needle, MASK)
    return text


def scrub_exception(exc: BaseException) -> None:
    """Scrub the text arguments of ``exc`` and of every exception it chains (for --debug)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(scrub(a) if isinstance(a, str) else a for a in current.args)
        for name in ("message", "hint"):
            value = getattr(current, name, None)
            if isinstance(value, str):
                setattr(current, name, scrub(value))
        current = current.__cause__ or current.__context__


class ScrubbingStream:
    """A text stream that masks registered secrets in what is written to it."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(scrub(text) if _registered else text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
