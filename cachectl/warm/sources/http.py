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
  timeout      seconds per request, a total deadline (default 10): a server that drips its
               answer a byte at a time cannot hold warm longer;  retries: per request
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
retries (a transport error, 429, 5xx) raises SourceUnavailableError (exit 3).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Mapping
from typing import Any

from cachectl import secrets
from cachectl.errors import SourceError, SourceUnavailableError, install_extra_hint
from cachectl.warm.sources import (
    BadRow,
    Position,
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

    def _get(self, client: Any, params: dict[str, Any], url: str | None = None,
             missing_ok: bool = False) -> Any:
        """The JSON document at ``url`` (default: the source's), retried; with
        ``missing_ok``, None for a 404."""
        import httpx

        delay = 0.2
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                status, headers, body = self._fetch(client, params, url or self.url)
            except _Retryable as exc:
                if last:
                    raise SourceUnavailableError(f"http source {self.description}: {self._scrub(str(exc))}",
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
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _fetch(self, client: Any, params: dict[str, Any], start: str) -> tuple[int, Any, bytes]:
        """One request to ``start`` (redirects followed): (status, headers, body) within
        ``timeout_s``."""
        import httpx

        deadline = time.monotonic() + self.timeout_s
        url: Any = start
        query: dict[str, Any] | None = params
        same_origin = True
        for _ in range(MAX_REDIRECTS + 1):
            headers = self.headers if same_origin else self.static_headers
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                with client.stream("GET", url, params=query, headers=headers,
                                   timeout=min(self.timeout_s, remaining)) as response:
                    if response.is_redirect and "location" in response.headers:
                        target = response.url.join(response.headers["location"])
                        # once another origin has been reached, no secret goes anywhere again
                        same_origin = same_origin and _origin(target) == _origin(
                            httpx.URL(start))
                        url, query = target, None
                        continue
                    return response.status_code, response.headers, _read(response, deadline)
            except httpx.TransportError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        raise SourceError(f"http source {self.description}: more than {MAX_REDIRECTS} "
                          "redirects (a redirect loop?)", hint="check the url")

    def _scrub(self, text: str) -> str:
        return secrets.scrub(text, self.secrets)

    def rows(self) -> Iterator[tuple[Position, Row | BadRow]]:
        import httpx

        position = 0
        params = dict(self.params)
        if self.mode == "page":
            params[self.param] = self.start
            if self.size_param and self.size:
                params[str(self.size_param)] = self.size
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            for page in range(1, self.max_pages + 1):
                doc = self._get(client, params)
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
        import httpx

        self.source = source
        self.template = template
        self._client = httpx.Client(timeout=source.timeout_s, follow_redirects=False)

    def find(self, params: Mapping[str, str]) -> list[Row]:
        """The row at the lookup URL for ``params``: none for a 404; a JSON array's objects."""
        from urllib.parse import quote

        url = self.template
        for name, value in params.items():
            url = url.replace("{" + name + "}", quote(str(value), safe=""))
        doc = self.source._get(self._client, {}, url, missing_ok=True)
        if doc is None:
            return []
        items = doc if isinstance(doc, list) else [doc]
        return [item for item in items if isinstance(item, dict)]

    def close(self) -> None:
        self._client.close()


def _origin(url: Any) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _read(response: Any, deadline: float) -> bytes:
    """The body, decoded (gzip…), by ``deadline`` and within ``MAX_RESPONSE_BYTES``."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise SourceError(f"an http response is larger than {MAX_RESPONSE_BYTES >> 20} MiB",
                              hint="page the source (pagination:) so each answer is smaller")
        if time.monotonic() > deadline:
            raise _Retryable("the answer took longer than the timeout")
        chunks.append(chunk)
    return b"".join(chunks)


def open_source(options: Mapping[str, Any], context: SourceContext) -> HttpSource:
    return HttpSource(options, context)
