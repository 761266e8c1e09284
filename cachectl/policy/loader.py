"""Read a policy file: safe YAML with positions, ``${VAR:-default}``, validation, resolution.

The YAML is built from the parser's event stream, never by a constructor, so no
tag can create an object, a mapping with the same key twice is a diagnostic (PyYAML
keeps the last one silently), aliases are expanded under a budget (alias bombs),
and nesting depth is bounded without recursion. Every node's 1-based line and
column is recorded for diagnostics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from cachectl import compression
from cachectl.compression import Compression
from cachectl.diagnostics import Code, Diagnostic, DiagnosticSink, Severity, Span
from cachectl.errors import PolicyError
from cachectl.files import open_regular
from cachectl.policy.model import (
    NAMESPACE_NAME_PATTERN,
    DefaultsSpec,
    Namespace,
    NamespaceSpec,
    Policy,
    PolicySpec,
    SpanIndex,
    Thresholds,
    TraceSettings,
    did_you_mean,
)
from cachectl.policy.template import KeyTemplate, TemplateSyntaxError, versioned_source

MAX_FILE_BYTES = 2 * 1024 * 1024
# Redis refuses SET … PX beyond LLONG_MAX - now (ms); half of it leaves room for any clock
MAX_REDIS_TTL_MS = (2**63 - 1) // 2
MAX_DEPTH = 64
MAX_NODES = 200_000
SUPPORTED_VERSIONS = (1,)
_NAMESPACE_NAME_RE = re.compile(NAMESPACE_NAME_PATTERN)
_INTERPOLATION_RE = re.compile(
    r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|\$\{")

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_TAG + t for t in ("null", "bool", "int", "float", "str")}


@dataclass(frozen=True)
class LoadResult:
    """A policy (None when it could not be built) and every diagnostic found on the way."""

    policy: Policy | None
    diagnostics: tuple[Diagnostic, ...]
    spec: PolicySpec | None = None  # the validated document, even when resolving failed
    spans: SpanIndex | None = None  # positions (and raw scalars) of the document's nodes

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.diagnostics)


class _TooLarge(Exception):
    def __init__(self, message: str, span: Span) -> None:
        super().__init__(message)
        self.message = message
        self.span = span


# ---------------------------------------------------------------------- entry points


def load_policy(source: str | Path, env: Mapping[str, str] | None = None) -> Policy:
    """Load and validate a policy file; raises PolicyError naming the first problems.

    ``env`` is the environment for ``${VAR}`` interpolation (the CLI passes os.environ).
    """
    return policy_or_error(read_policy(Path(source), env or {}), str(source))


def policy_or_error(result: LoadResult, source: str) -> Policy:
    """The loaded policy; PolicyError naming the first problems when there is none."""
    errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
    if result.policy is None or errors:
        first = errors[0] if errors else None
        where = f"{first.span.path}:{first.span.line}:{first.span.col}: " if first else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PolicyError(
            f"invalid policy: {where}{first.code + ' ' + first.message if first else ''}{more}",
            hint=f"run `cachectl lint {source}` to see every problem",
            diagnostics=tuple(errors),
        )
    return result.policy


def read_policy(path: Path, env: Mapping[str, str]) -> LoadResult:
    """Read a policy file into a LoadResult; raises PolicyError only if the file is unreadable."""
    try:
        with open_regular(path) as fh:  # a FIFO or /dev/zero: refused, not waited on
            data = fh.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise PolicyError(f"{path} is a folder, not a policy file",
                          hint="pass a .yaml file (lint also accepts folders)") from None
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist",
                          hint="pass --policy PATH or set CACHECTL_POLICY") from None
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    return parse_policy(data, str(path), env, source_path=path)


def parse_policy(data: bytes | str, name: str, env: Mapping[str, str],
                 source_path: Path | None = None) -> LoadResult:
    """Parse policy text (bytes or str) named ``name`` into a LoadResult."""
    sink = DiagnosticSink()
    spans = SpanIndex(name)
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_FILE_BYTES:
        sink.add(Code.DOCUMENT_TOO_LARGE, f"policy file is over {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                 Span(name, 1, 1), "a policy is a few kilobytes; is this the right file?")
        return LoadResult(None, tuple(sink.items))
    text = _decode(data, name, sink)
    if text is None:
        return LoadResult(None, tuple(sink.items))
    tree = _build_tree(text, name, spans, env, sink)
    if tree is None:
        return LoadResult(None, tuple(sink.items))
    if not isinstance(tree, dict):
        sink.add(Code.EMPTY_POLICY, "a policy is a mapping with version, redis, namespaces…",
                 spans.value(), "start from policies/minimal.yaml")
        return LoadResult(None, tuple(sink.items))
    spec = _validate(tree, spans, sink)
    policy = _resolve(spec, spans, sink, source_path) if spec is not None else None
    return LoadResult(policy, tuple(sink.items), spec, spans)


# ---------------------------------------------------------------------- bytes -> text


def _decode(data: bytes | str, name: str, sink: DiagnosticSink) -> str | None:
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            before = data[: exc.start]
            line = before.count(b"\n") + 1
            col = exc.start - (before.rfind(b"\n") + 1) + 1
            sink.add(Code.YAML_SYNTAX, f"not UTF-8 text (byte 0x{data[exc.start]:02x})",
                     Span(name, line, col), "save the policy as UTF-8")
            return None
    if text.strip() == "":
        sink.add(Code.EMPTY_POLICY, "the policy file is empty", Span(name, 1, 1),
                 "start from policies/minimal.yaml")
        return None
    return text


# ---------------------------------------------------------------------- text -> tree


def _span(name: str, mark: Any) -> Span:
    return Span(name, mark.line + 1, mark.column + 1)


def _build_tree(text: str, name: str, spans: SpanIndex, env: Mapping[str, str],
                sink: DiagnosticSink) -> Any:
    """Build plain dicts/lists/scalars from YAML events, recording spans; None on failure."""
    resolver = yaml.resolver.Resolver()
    constructor = yaml.constructor.SafeConstructor()
    anchors: dict[str, tuple[Any, int]] = {}
    # stack frames: [container, path, pending_key, key_span, start_count, anchor]
    stack: list[list[Any]] = []
    root: Any = None
    documents = 0
    nodes = 0

    def place(value: Any, span: Span, size: int) -> None:
        nonlocal root, nodes
        nodes += size
        if nodes > MAX_NODES:
            raise _TooLarge(f"the document expands to over {MAX_NODES} nodes (alias bomb?)", span)
        if not stack:
            root = value
            return
        frame = stack[-1]
        container, path = frame[0], frame[1]
        if isinstance(container, list):
            spans.values[(*path, len(container))] = span
            container.append(value)
            return
        if frame[2] is _NO_KEY:
            if isinstance(value, (dict, list)) or value is None:
                sink.add(Code.WRONG_TYPE, "a mapping key must be a plain word", span)
                key = f"<invalid key at {span.line}:{span.col}>"
            else:
                key = str(value).lower() if isinstance(value, bool) else str(value)
            if key == "<<":
                sink.add(Code.WRONG_TYPE, "merge keys (<<) are not supported", span,
                         "put shared values under defaults:")
                frame[2], frame[3] = _DROP_KEY, span  # reported once; its value is dropped
                return
            if key in container:
                first = spans.keys.get((*path, key))
                where = f" (first at line {first.line})" if first else ""
                sink.add(Code.DUPLICATE_KEY, f"duplicate key {key!r}{where}", span,
                         "YAML would silently keep only the last one; remove one of them")
            frame[2], frame[3] = key, span
            return
        key, key_span = frame[2], frame[3]
        if key is _DROP_KEY:
            frame[2] = _NO_KEY
            return
        if key not in container:
            spans.keys[(*path, key)] = key_span
            spans.values[(*path, key)] = span
            container[key] = value
        frame[2] = _NO_KEY

    def child_path() -> tuple[Any, ...]:
        if not stack:
            return ()
        frame = stack[-1]
        if isinstance(frame[0], list):
            return (*frame[1], len(frame[0]))
        return (*frame[1], frame[2])

    def in_key_position() -> bool:
        return bool(stack) and isinstance(stack[-1][0], dict) and stack[-1][2] is _NO_KEY

    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    sink.add(Code.YAML_SYNTAX, "more than one YAML document in the policy",
                             _span(name, event.start_mark), "remove the second '---' document")
                    return None
            elif isinstance(event, yaml.ScalarEvent):
                span = _span(name, event.start_mark)
                value = _scalar(event, resolver, constructor, span, sink)
                if isinstance(value, str) and not in_key_position():
                    raw = value
                    value = _interpolate(value, env, span, sink)
                    if "${" in raw:  # keep the text as written (lint: secrets in the file)
                        spans.raw[child_path()] = raw
                if event.anchor:
                    anchors[event.anchor] = (value, 1)
                place(value, span, 1)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                span = _span(name, event.start_mark)
                if event.tag not in (None, "!", _TAG + "map", _TAG + "seq"):
                    sink.add(Code.UNSUPPORTED_TAG, f"YAML tag {event.tag} is not allowed", span,
                             "a policy holds plain mappings, lists and scalars")
                if len(stack) >= MAX_DEPTH:
                    raise _TooLarge(f"nested deeper than {MAX_DEPTH} levels", span)
                if in_key_position():
                    sink.add(Code.WRONG_TYPE, "a mapping key must be a plain word", span)
                container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
                path = child_path()
                spans.values.setdefault(path, span)
                stack.append([container, path, _NO_KEY, None, nodes, event.anchor, span])
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                frame = stack.pop()
                size = nodes - frame[4] + 1
                if frame[5]:
                    anchors[frame[5]] = (frame[0], size)
                nodes = frame[4]
                place(frame[0], frame[6], size)
            elif isinstance(event, yaml.AliasEvent):
                span = _span(name, event.start_mark)
                if event.anchor not in anchors:
                    sink.add(Code.YAML_SYNTAX, f"unknown alias *{event.anchor}", span)
                    return None
                value, size = anchors[event.anchor]
                place(value, span, size)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = _span(name, mark) if mark else Span(name, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if "nesting depth" in problem:
            sink.add(Code.DOCUMENT_TOO_LARGE, f"nested too deep ({problem})", span,
                     "a policy is a few kilobytes of plain YAML")
        else:
            sink.add(Code.YAML_SYNTAX, f"YAML syntax: {problem}", span)
        return None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        span = Span(name, before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        sink.add(Code.YAML_SYNTAX, f"character {exc.character!r} is not allowed in YAML", span,
                 "is this a binary file?")
        return None
    except yaml.YAMLError as exc:
        sink.add(Code.YAML_SYNTAX, f"YAML syntax: {exc}", Span(name, 1, 1))
        return None
    except _TooLarge as exc:
        sink.add(Code.DOCUMENT_TOO_LARGE, exc.message, exc.span, "a policy is a few kilobytes of plain YAML")
        return None
    if documents == 0 or root is None:
        sink.add(Code.EMPTY_POLICY, "the policy file holds no document", Span(name, 1, 1),
                 "start from policies/minimal.yaml")
        return None
    return root


class _NoKey:
    pass


_NO_KEY = _NoKey()
_DROP_KEY = _NoKey()


def _scalar(event: Any, resolver: Any, constructor: Any, span: Span,
            sink: DiagnosticSink) -> Any:
    tag = event.tag
    if tag in (None, "!"):
        tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == _TAG + "merge":
        return event.value  # "<<" is reported where it is used as a key
    if tag == _TAG + "timestamp":
        return event.value  # a date is never a policy value; let the schema say what is wanted
    if tag not in _PLAIN_TAGS:
        sink.add(Code.UNSUPPORTED_TAG, f"YAML tag {tag} is not allowed", span,
                 "a policy holds plain mappings, lists and scalars")
        return event.value
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    return constructor.construct_object(node)


def _interpolate(value: str, env: Mapping[str, str], span: Span, sink: DiagnosticSink) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; ``$${`` is a literal ``${``."""
    if "$" not in value:
        return value

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        if m.group("name") is None:
            sink.add(Code.INVALID_INTERPOLATION, f"malformed interpolation in {value!r}", span,
                     "write ${VAR} or ${VAR:-default}; $${ for a literal ${")
            return m.group(0)
        name, default = m.group("name"), m.group("default")
        if name in env:
            return env[name]
        if default is not None:
            return default
        sink.add(Code.UNSET_ENV_VAR, f"environment variable {name} is not set and has no default", span,
                 f"set {name}, or write ${{{name}:-default}}")
        return ""

    return _INTERPOLATION_RE.sub(repl, value)


# ---------------------------------------------------------------------- tree -> spec

_TYPE_CODES = {
    "extra_forbidden": Code.UNKNOWN_FIELD,
    "missing": Code.MISSING_FIELD,
    "duration": Code.INVALID_DURATION,
    "size": Code.INVALID_SIZE,
    "ratio": Code.INVALID_RATIO,
}


def _validate(tree: dict[str, Any], spans: SpanIndex, sink: DiagnosticSink) -> PolicySpec | None:
    if "version" in tree and tree["version"] not in SUPPORTED_VERSIONS:
        sink.add(Code.UNSUPPORTED_VERSION, f"policy version {tree['version']!r} is not supported",
                 spans.value("version"), "this cachectl reads version: 1")
        return None
    try:
        return PolicySpec.model_validate(tree)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            code = _TYPE_CODES.get(err["type"], Code.WRONG_TYPE)
            if code == Code.UNKNOWN_FIELD:
                allowed = _fields_at(loc[:-1])
                sink.add(code, f"unknown field {loc[-1]!r}" + _where(loc[:-1]),
                         spans.key(*loc), did_you_mean(str(loc[-1]), allowed)
                         or f"allowed here: {', '.join(sorted(allowed))}")
            elif code == Code.MISSING_FIELD:
                sink.add(code, f"missing field {loc[-1]!r}" + _where(loc[:-1]),
                         spans.value(*loc[:-1]))
            elif code == Code.WRONG_TYPE:
                sink.add(code, f"{_dotted(loc)}: {err['msg']}", spans.value(*loc))
            else:
                sink.add(code, f"{_dotted(loc)}: {err['msg']}", spans.value(*loc))
        return None


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "policy"


def _where(loc: tuple[Any, ...]) -> str:
    return f" in {_dotted(loc)}" if loc else ""


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names the model allows at ``loc`` (for did-you-mean)."""
    model: Any = PolicySpec
    for _part in loc:
        if get_origin(model) is dict:  # a mapping of names (namespaces): step into its values
            model = _unwrap(get_args(model)[1])
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        info = model.model_fields.get(str(_part))
        if info is None:
            return []
        model = _unwrap(info.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) is dict:
        return annotation
    for arg in get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


# ---------------------------------------------------------------------- spec -> policy


def _resolve(spec: PolicySpec, spans: SpanIndex, sink: DiagnosticSink,
             source_path: Path | None) -> Policy | None:
    defaults, t = spec.defaults, spec.thresholds
    prefix = spec.redis.key_prefix
    ok = True
    if any(ch in prefix for ch in "*?[]\\ \t\n") or prefix.endswith(":") or prefix.startswith(":"):
        sink.add(Code.INVALID_KEY_PREFIX, f"key_prefix {prefix!r} must not hold glob characters, spaces, "
                 "or start or end with ':'", spans.value("redis", "key_prefix"),
                 'write key_prefix: shop; cachectl adds the ":"')
        ok = False
    namespaces: dict[str, Namespace] = {}
    for name, ns in spec.namespaces.items():
        built = _resolve_namespace(name, ns, spec, spans, sink, prefix if ok else "")
        if built is None:
            ok = False
        else:
            namespaces[name] = built
    if not ok:
        return None
    thresholds = Thresholds(
        hit_rate=t.hit_rate,
        critical_hit_rate=t.critical_hit_rate,
        latency_cached_p99_ms=t.latency_p99_ms.cached,
        latency_hot_p99_ms=t.latency_p99_ms.hot,
        memory_used_ratio=t.memory_used_ratio,
        max_stale_ratio=t.max_stale_ratio,
        min_requests=t.min_requests,
        max_inconsistency=t.max_inconsistency,
    )
    del defaults
    return Policy(
        version=spec.version,
        redis_url=spec.redis.url,
        key_prefix=prefix,
        cluster=spec.redis.cluster,
        thresholds=thresholds,
        namespaces=namespaces,
        spans=spans,
        source_path=source_path,
        spec=spec,
        trace=TraceSettings(spec.trace.sample, spec.trace.max_events) if spec.trace else None,
    )


def _resolve_namespace(name: str, ns: NamespaceSpec, spec: PolicySpec, spans: SpanIndex,
                       sink: DiagnosticSink, prefix: str) -> Namespace | None:
    d = spec.defaults
    path = ("namespaces", name)
    ok = True
    if not _NAMESPACE_NAME_RE.match(name):
        sink.add(Code.INVALID_NAMESPACE_NAME, f"namespace name {name!r} is not letters, digits, _ and -",
                 spans.key(*path))
        ok = False
    try:
        template = KeyTemplate(versioned_source(ns.key, ns.version), prefix)
    except TemplateSyntaxError as exc:
        sink.add(exc.code, f"namespace {name}: key {ns.key!r}: {exc.message}",
                 spans.value(*path, "key"))
        template = None
        ok = False
    ttl = ns.ttl if ns.ttl is not None else d.ttl
    if ttl is None:
        sink.add(Code.MISSING_TTL, f"namespace {name} has no ttl and defaults has none",
                 spans.key(*path), "add ttl: 10m to the namespace or to defaults")
        ok = False
    elif ttl <= 0:
        where = (*path, "ttl") if ns.ttl is not None else ("defaults", "ttl")
        sink.add(Code.NON_POSITIVE_DURATION, f"namespace {name}: ttl must be positive", spans.value(*where),
                 "a key without a positive TTL would live forever")
        ok = False
    stale = ns.stale if ns.stale is not None else d.stale
    sie_raw = ns.stale_if_error if ns.stale_if_error is not None else d.stale_if_error
    sie = sie_raw if sie_raw is not None else stale
    jitter = ns.jitter if ns.jitter is not None else d.jitter
    for field_name, value in (("stale", stale), ("stale_if_error", sie)):
        if value < 0:
            sink.add(Code.NON_POSITIVE_DURATION, f"namespace {name}: {field_name} must not be negative",
                     spans.value(*path, field_name))
            ok = False
    if sie < stale:
        sink.add(Code.STALE_IF_ERROR_SHORTER_THAN_STALE,
                 f"namespace {name}: stale_if_error is shorter than stale",
                 spans.value(*path, "stale_if_error"),
                 "the fail-safe window starts after the stale one; make it >= stale")
        ok = False
    if not 0 <= jitter < 1:
        sink.add(Code.JITTER_TOO_LARGE, f"namespace {name}: jitter {jitter:.0%} must be in [0 %, 100 %)",
                 spans.value(*path, "jitter") if ns.jitter is not None
                 else spans.value("defaults", "jitter"), "10 % is usual")
        ok = False
    if ok and ttl is not None and ttl * (1 + max(0.0, jitter)) + max(stale, sie) > MAX_REDIS_TTL_MS:
        where = (*path, "ttl") if ns.ttl is not None else ("defaults", "ttl")
        sink.add(Code.TTL_BEYOND_REDIS,
                 f"namespace {name}: ttl with jitter and grace is longer than Redis accepts "
                 f"(PX up to {MAX_REDIS_TTL_MS} ms)", spans.value(*where),
                 "a cache TTL is minutes to days; for keys that never expire, this is not a cache")
        ok = False
    beta: float | None = None
    if ns.early_refresh is True:
        beta = 1.0
    elif ns.early_refresh is not False:
        beta = float(ns.early_refresh)
        if not math.isfinite(beta) or beta <= 0:
            sink.add(Code.WRONG_TYPE, f"namespace {name}: early_refresh must be true, false or a beta > 0",
                     spans.value(*path, "early_refresh"))
            ok = False
    compress = _resolve_compress(name, ns, d, spans, sink)
    if not ok or template is None or ttl is None or compress is False:
        return None
    return Namespace(
        name=name,
        template=template,
        ttl_ms=ttl,
        stale_ms=stale,
        stale_if_error_ms=sie,
        jitter=jitter,
        critical=ns.critical,
        hot=ns.hot,
        hit_rate=ns.hit_rate if ns.hit_rate is not None else (
            spec.thresholds.critical_hit_rate if ns.critical else spec.thresholds.hit_rate),
        max_value_bytes=ns.max_value_bytes if ns.max_value_bytes is not None
        else d.max_value_bytes,
        tags=tuple(ns.tags),
        early_refresh_beta=beta,
        warm=ns.warm,
        description=ns.description,
        version=ns.version,
        read_previous=ns.read_previous,
        key_source=ns.key,
        compress=compress,
        private=tuple(ns.private),
    )


def _resolve_compress(name: str, ns: NamespaceSpec, d: DefaultsSpec, spans: SpanIndex,
                      sink: DiagnosticSink) -> Compression | Literal[False] | None:
    """The namespace's compression (None: plain), or False after reporting CP408/CP410."""
    spec = d.compress if ns.compress is None else ns.compress
    if spec is None or spec.codec == "none":
        return None
    where = ("defaults", "compress") if ns.compress is None else ("namespaces", name, "compress")
    if spec.codec not in compression.POLICY_CODECS:
        sink.add(Code.UNKNOWN_CODEC, f"namespace {name}: unknown codec {spec.codec!r}",
                 spans.value(*where, "codec"),
                 did_you_mean(spec.codec, compression.POLICY_CODECS)
                 or f"codecs: {', '.join(compression.POLICY_CODECS)}, or none")
        return False
    level = compression.default_level(spec.codec) if spec.level is None else spec.level
    problem = compression.level_error(spec.codec, level)
    if problem is not None:
        sink.add(Code.INVALID_COMPRESSION_LEVEL,
                 f"namespace {name}: {spec.codec} level {level} is out of range",
                 spans.value(*where, "level"), problem)
        return False
    return Compression(spec.codec, level, spec.min_bytes)
