"""``type: http``: a JSON endpoint, paged; needs httpx (the ``http`` extra).

Options:
  url          the first page's URL
  items        dotted path to the array of rows in each response (default: the response is one)
  params       static query parameters
  headers      static headers
  env_headers  headers whose values come from environment variables:
               ``{Authorization: {var: API_TOKEN, prefix: "Bearer "}}`` or ``{X-Api-Key: API_KEY}``
  pagination   ``{type: page, param: page, start: 1, size_param: per_page, size: 100}``: ask
               page after page until one is empty (or shorter than ``size``); or
               ``{type: cursor, param: cursor, next: meta.next_cursor}``: pass the cursor each
               response names until it is null. Without it, one request.
  timeout      seconds per request, a total deadline (default 10) from connecting to the
               body's last byte, redirects included: a server that drips its headers or its
               body a byte at a time cannot hold warm longer;  retries: per request
               (default 3), with backoff, on connection errors, timeouts, 429 and 5xx.
  max_pages    a safety stop (default 100000)
  lookup       a URL template that answers one key's row, its {placeholders} the key
               template's (``https://api.example.com/products/{id}``): the response is the
               row (an object; ``items`` is not applied), 404 means there is none.
               ``cachectl verify`` asks it once per key checked instead of reading every page.
Position: the row's number over all pages; reported as page and item.

Redirects are followed here, not by httpx, at most ``MAX_REDIRECTS``: the ``env_headers``
(secrets) go only to the source URL's own origin (httpx strips just Authorization on a
cross-origin redirect). Credentials in the URL are never printed (``redact_url``).
A response body is read up to ``MAX_RESPONSE_BYTES``. A server still failing after the
retries (a transport error, 429, 5xx, the deadline passed) raises SourceUnavailableError
(exit 3).

The deadline: httpx's own timeouts bound each connect, read and write, not their sum (a
server sending a header byte every second never trips a 10 s read timeout). So every request
runs as a task on an event loop in a helper thread (an anyio blocking portal, ``_Requests``)
under one ``anyio.fail_after(timeout)``: cancellation ends whichever await is pending (the
connection, the TLS handshake, a header read, a body read), httpcore closes that connection,
and the caller gets TimeoutError, with no socket handed across threads and nothing of
httpx's private API (environment proxies and certificates work as with any httpx client).
The same cancellation serves ``interrupt()``: Ctrl-C or SIGTERM ends a request in flight
and the retries, not after them.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from cachectl import secrets
from cachectl.errors import SourceError, SourceUnavailableError, install_extra_hint
from cachectl.warm.sources import (
    BadRow,
    Position,
    ReadInterrupted,
    Row,
    SourceContext,
    check_options,
    loads_json,
    option,
    positive_number,
)

INSTALL_HINT = f"install the http extra: {install_extra_hint('http')}"
_PAGINATION = {"page": ("param", "start", "size_param", "size"), "cursor": ("param", "next")}
MAX_REDIRECTS = 10
MAX_RESPONSE_BYTES = 512 << 20


class _Retryable(Exception):
    """A failure worth another attempt (a transport error, a deadline passed)."""


class _Requests:
    """One ``httpx.AsyncClient`` on an event loop in a helper thread (an anyio blocking
    portal): ``fetch`` runs a request there under one ``anyio.fail_after`` deadline and
    returns its answer to the calling thread; ``interrupt`` (from any thread) cancels the
    request in flight and every later one. See the module doc for why."""

    def __init__(self, source: HttpSource) -> None:
        from anyio.from_thread import start_blocking_portal

        self.source = source
        self.interrupted = threading.Event()
        self._scope: Any = None  # the CancelScope of the request in flight (loop thread only)
        self._portal_cm: AbstractContextManager[Any] = start_blocking_portal(
            name="cachectl-http")
        self._portal = self._portal_cm.__enter__()
        try:
            self._client = self._portal.call(self._open)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise

    async def _open(self) -> Any:
        import httpx

        return httpx.AsyncClient(timeout=self.source.timeout_s, follow_redirects=False)

    def fetch(self, params: dict[str, Any], url: str) -> tuple[int, Any, bytes]:
        """(status, headers, body) of one GET of ``url`` (redirects followed) within the
        source's timeout; _Retryable when it failed in a way worth retrying, ReadInterrupted
        once interrupted."""
        result: tuple[int, Any, bytes] = self._portal.call(self._fetch, params, url)
        return result

    async def _fetch(self, params: dict[str, Any], url: str) -> tuple[int, Any, bytes]:
        import anyio
        import httpx

        timeout_s = self.source.timeout_s
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self.interrupted.is_set():
                scope.cancel()
            try:
                with anyio.fail_after(timeout_s):
                    return await self.source._exchange(self._client, params, url)
            except TimeoutError:
                raise _Retryable(f"the answer took longer than the timeout ({timeout_s:g} s "
                                 "for the whole response, headers and body)") from None
            except httpx.TransportError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None
            finally:
                self._scope = None
        raise ReadInterrupted(f"http source {self.source.description}: the request was "
                              "cancelled (interrupted)")

    def interrupt(self) -> None:
        self.interrupted.set()
        self._portal.call(self._cancel)

    def _cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def close(self) -> None:
        """Close the client and stop the loop; a request still in flight (the caller left
        on a second Ctrl-C) is cancelled first, not waited for."""
        try:
            self.interrupt()
            self._portal.call(self._client.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)


def _walk(doc: Any, path: str | None) -> Any:
    if not path:
        return doc
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


_MISSING = object()


class HttpSource:
    """Rows of a paged JSON API."""

    def __init__(self, options: Mapping[str, Any], context: SourceContext) -> None:
        ns = context.namespace
        check_options("http", ns, options, ("url",),
                      ("items", "params", "headers", "env_headers", "pagination", "timeout",
                       "retries", "max_pages", "lookup"))
        self.url: str = option(options, "url", str, ns, "http")
        self.lookup: str | None = option(options, "lookup", str, ns, "http")
        if self.lookup is not None:
            secrets.register_url(self.lookup)
        secrets.register_url(self.url)
        if not self.url.startswith(("http://", "https://")):
            raise SourceError(f"namespace {ns}: http url must start with http:// or https://")
        self.items: str | None = option(options, "items", str, ns, "http")
        self.params: dict[str, Any] = dict(option(options, "params", dict, ns, "http", {}))
        self.timeout_s = positive_number(options, "timeout", ns, "http", 10.0)
        self.retries: int = option(options, "retries", int, ns, "http", 3)
        self.max_pages: int = option(options, "max_pages", int, ns, "http", 100_000)
        for name, value in (("retries", self.retries), ("max_pages", self.max_pages - 1)):
            if value < 0:
                raise SourceError(f"namespace {ns}: http {name} must be "
                                  f"{'at least 0' if name == 'retries' else 'at least 1'}, "
                                  f"got {options.get(name)!r}")
        self.static_headers = {str(k): str(v) for k, v in
                               option(options, "headers", dict, ns, "http", {}).items()}
        headers = dict(self.static_headers)
        for name, spec in option(options, "env_headers", dict, ns, "http", {}).items():
            var, prefix = (spec, "") if isinstance(spec, str) else (
                spec.get("var") if isinstance(spec, dict) else None,
                str(spec.get("prefix", "")) if isinstance(spec, dict) else "")
            if not isinstance(var, str) or not var:
                raise SourceError(f"namespace {ns}: env_headers {name!r} must name an "
                                  "environment variable", hint="e.g. {var: API_TOKEN, prefix: "
                                  "'Bearer '} or just API_TOKEN")
            if var not in context.env:
                raise SourceError(f"namespace {ns}: environment variable {var} is not set "
                                  f"(header {name} of the http source)",
                                  hint=f"export {var}=… before running cachectl warm")
            headers[str(name)] = prefix + context.env[var]
        self.headers = headers
        self.secrets = tuple(v for k, v in headers.items() if k in
                             option(options, "env_headers", dict, ns, "http", {}))
        secrets.register(*self.secrets)
        pagination = option(options, "pagination", dict, ns, "http", {})
        self.mode: str | None = None
        if pagination:
            self.mode = pagination.get("type")
            if self.mode not in _PAGINATION:
                raise SourceError(f"namespace {ns}: http pagination type must be page or cursor, "
                                  f"got {self.mode!r}")
            check_options(f"http pagination ({self.mode})", ns, pagination, ("type",),
                          _PAGINATION[self.mode])
            if self.mode == "cursor" and not pagination.get("next"):
                raise SourceError(f"namespace {ns}: cursor pagination needs next: "
                                  "path.to.the.next.cursor in each response")
        self.param: str = str(pagination.get("param", "page" if self.mode == "page" else "cursor"))
        self.start: int = option(pagination, "start", int, ns, "http pagination", 1)
        self.size_param = pagination.get("size_param")
        self.size: int | None = option(pagination, "size", int, ns, "http pagination")
        if self.size is not None and self.size < 1:
            raise SourceError(f"namespace {ns}: http pagination size must be at least 1, "
                              f"got {self.size!r}")
        self.next_path: str | None = pagination.get("next")
        self._pages: list[int] = []  # the first position of each page
        self._requests: _Requests | None = None  # while rows() runs
        self._interrupted = False
        try:
            import httpx  # noqa: F401 - fail now, not after other namespaces were written
        except ImportError:
            raise SourceError("an http warm source needs httpx", hint=INSTALL_HINT) from None

    @property
    def description(self) -> str:
        return f"http {secrets.redact_url(self.url.split('?', 1)[0])}"

    def locate(self, position: Position) -> str:
        page = bisect.bisect_right(self._pages, position)
        first = self._pages[page - 1] if page else 1
        return f"page {page} item {position - first + 1}"

    def estimated_rows(self) -> int | None:
        return None

    def _get(self, requests: _Requests, params: dict[str, Any], url: str | None = None,
             missing_ok: bool = False) -> Any:
        """The JSON document at ``url`` (default: the source's), retried; with
        ``missing_ok``, None for a 404."""
        import httpx

        delay = 0.2
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                status, headers, body = requests.fetch(params, url or self.url)
            except _Retryable as exc:
                if last:
                    raise SourceUnavailableError(
                        f"http source {self.description}: {self._scrub(str(exc))}",
                        hint=f"gave up after {self.retries + 1} attempts; "
                        "check the url and raise timeout/retries") from None
            except httpx.HTTPError as exc:  # a corrupt gzip body, an invalid URL or header
                raise SourceError(f"http source {self.description}: {type(exc).__name__}: "
                                  f"{self._scrub(str(exc))}",
                                  hint="the server's answer cannot be read") from None
            else:
                if status == 429 or status >= 500:
                    if last:
                        raise SourceUnavailableError(
                            f"http source {self.description}: HTTP {status} "
                            f"after {self.retries + 1} attempts")
                elif status == 404 and missing_ok:
                    return None
                elif status >= 400:
                    hint = ("check env_headers (the token) and the url"
                            if status in (401, 403) else "check the url and params")
                    raise SourceError(f"http source {self.description}: HTTP {status}", hint=hint)
                else:
                    try:
                        return loads_json(body)
                    except ValueError as exc:
                        raise SourceError(
                            f"http source {self.description}: the response is not JSON "
                            f"({headers.get('content-type', 'no content type')}; {exc})") from None
            if requests.interrupted.wait(delay):  # the backoff, cut short by interrupt()
                raise ReadInterrupted(f"http source {self.description}: interrupted")
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def _exchange(self, client: Any, params: dict[str, Any],
                        start: str) -> tuple[int, Any, bytes]:
        """One request to ``start``, redirects followed: (status, headers, body). Runs on
        ``_Requests``' event loop, under its deadline."""
        import httpx

        url: Any = start
        query: dict[str, Any] | None = params
        same_origin = True
        for _ in range(MAX_REDIRECTS + 1):
            headers = self.headers if same_origin else self.static_headers
            async with client.stream("GET", url, params=query, headers=headers) as response:
                if response.is_redirect and "location" in response.headers:
                    target = response.url.join(response.headers["location"])
                    # once another origin has been reached, no secret goes anywhere again
                    same_origin = same_origin and _origin(target) == _origin(httpx.URL(start))
                    url, query = target, None
                    continue
                return response.status_code, response.headers, await _read(response)
        raise SourceError(f"http source {self.description}: more than {MAX_REDIRECTS} "
                          "redirects (a redirect loop?)", hint="check the url")

    def _scrub(self, text: str) -> str:
        return secrets.scrub(text, self.secrets)

    def interrupt(self) -> None:
        """Cancel the request in flight and any retry (from warm's watchdog thread on
        Ctrl-C/SIGTERM); the read raises ReadInterrupted."""
        self._interrupted = True
        if self._requests is not None:
            self._requests.interrupt()

    def rows(self) -> Iterator[tuple[Position, Row | BadRow]]:
        requests = _Requests(self)
        self._requests = requests
        if self._interrupted:
            requests.interrupted.set()
        try:
            yield from self._rows(requests)
        finally:
            self._requests = None
            requests.close()

    def _rows(self, requests: _Requests) -> Iterator[tuple[Position, Row | BadRow]]:
        position = 0
        params = dict(self.params)
        if self.mode == "page":
            params[self.param] = self.start
            if self.size_param and self.size:
                params[str(self.size_param)] = self.size
        for page in range(1, self.max_pages + 1):
            doc = self._get(requests, params)
            items = _walk(doc, self.items)
            if items is _MISSING or not isinstance(items, list):
                raise SourceError(
                    f"http source {self.description}: page {page} has no array at "
                    f"{self.items or 'the top level'}",
                    hint="set items: to the dotted path of the rows, e.g. items: data")
            self._pages.append(position + 1)
            for item in items:
                position += 1
                yield position, (item if isinstance(item, dict) else
                                 BadRow(f"a JSON {type(item).__name__}, not an object"))
            if self.mode is None:
                return
            if self.mode == "page":
                if not items or (self.size and len(items) < int(self.size)):
                    return
                params[self.param] = int(params[self.param]) + 1
            else:
                cursor = _walk(doc, self.next_path)
                if cursor is _MISSING or cursor in (None, ""):
                    return
                params[self.param] = cursor
        raise SourceError(f"http source {self.description}: more than max_pages "
                          f"({self.max_pages}) pages", hint="raise max_pages if that is right")


    def open_lookup(self) -> HttpLookup | None:
        """One client asking the ``lookup`` URL per key, or None without one."""
        return None if self.lookup is None else HttpLookup(self, self.lookup)


class HttpLookup:
    """GET the ``lookup`` URL with one key's placeholder values put in (URL-quoted)."""

    def __init__(self, source: HttpSource, template: str) -> None:
        self.source = source
        self.template = template
        self._requests = _Requests(source)

    def find(self, params: Mapping[str, str]) -> list[Row]:
        """The row at the lookup URL for ``params``: none for a 404; a JSON array's objects."""
        from urllib.parse import quote

        url = self.template
        for name, value in params.items():
            url = url.replace("{" + name + "}", quote(str(value), safe=""))
        doc = self.source._get(self._requests, {}, url, missing_ok=True)
        if doc is None:
            return []
        items = doc if isinstance(doc, list) else [doc]
        return [item for item in items if isinstance(item, dict)]

    def close(self) -> None:
        self._requests.close()


def _origin(url: Any) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


async def _read(response: Any) -> bytes:
    """The body, decoded (gzip…), within ``MAX_RESPONSE_BYTES`` (the caller's deadline
    bounds the time)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise SourceError(f"an http response is larger than {MAX_RESPONSE_BYTES >> 20} MiB",
                              hint="page the source (pagination:) so each answer is smaller")
        chunks.append(chunk)
    return b"".join(chunks)


def open_source(options: Mapping[str, Any], context: SourceContext) -> HttpSource:
    return HttpSource(options, context)
