"""Flush targets: the operator's selection (namespaces, a tag's namespaces, one key, a raw
glob), refused when it is ambiguous or unsafe (``*``, a pattern without ``force``, a
soft flush of a namespace without a stale window)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cachectl.errors import UsageError
from cachectl.freshness import soft_expire_pttl_ms
from cachectl.keyspace.matcher import glob_matcher
from cachectl.policy.model import Namespace, Policy
from cachectl.policy.template import GLOB_SPECIALS, KeyParamError


class FlushMode(StrEnum):
    HARD = "hard"  # UNLINK: never served again, not even on error
    SOFT = "soft"  # PTTL lowered into the stale band: served stale, revalidated
    CLAMP = "clamp"  # PTTL lowered to a ceiling (a new policy's maximum), never lengthened


@dataclass(frozen=True)
class FlushTarget:
    """One thing to flush: a namespace, the single key a template renders, or a raw glob."""

    kind: str  # "namespace" | "key" | "pattern"
    name: str  # the namespace's name, or the pattern
    selector: str  # how the operator chose it: "namespace product", "tag catalog", …
    key: bytes | None = None

    @property
    def label(self) -> str:
        if self.kind == "key" and self.key is not None:
            return f"key {self.key.decode('utf-8', 'backslashreplace')}"
        return f"{self.kind} {self.name}"


def select_targets(
    policy: Policy,
    *,
    namespaces: Sequence[str] = (),
    tags: Sequence[str] = (),
    key: str | None = None,
    key_params: Sequence[str] = (),
    pattern: str | None = None,
    force: bool = False,
    soft: bool = False,
) -> tuple[FlushTarget, ...]:
    """Turn the operator's selection into targets; UsageError when it is wrong or unsafe.

    Exactly one kind of selection is allowed. ``key_params`` are ``PARAM=VALUE``
    strings filling the template of namespace ``key``. ``pattern`` needs ``force`` and
    is refused when it would match every key. A soft flush needs namespaces with a
    stale window.
    """
    given = [name for name, on in (("--namespace", bool(namespaces)), ("--tag", bool(tags)),
                                   ("--key", key is not None), ("--pattern", pattern is not None))
             if on]
    if not given:
        raise UsageError("nothing to flush",
                         hint="pass --namespace NS, --tag TAG, --key NS PARAM=VALUE… "
                         "(or --history to list past flushes)")
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be combined",
                         hint="flush one kind of selection per run")
    if key_params and key is None:
        raise UsageError(f"unexpected argument {key_params[0]!r}",
                         hint="PARAM=VALUE arguments go with --key NS, e.g. --key product id=42")
    targets: list[FlushTarget] = []
    if pattern is not None:
        targets.append(_pattern_target(policy, pattern, force=force, soft=soft))
    elif key is not None:
        targets.append(_key_target(policy, key, key_params))
    else:
        seen: set[str] = set()
        chosen: list[tuple[Namespace, str]] = []
        for name in namespaces:
            chosen.append((policy.namespace(name), f"namespace {name}"))
        for tag in tags:
            chosen.extend((ns, f"tag {tag}") for ns in policy.with_tag(tag))
        for ns, selector in chosen:
            if ns.name not in seen:
                seen.add(ns.name)
                targets.append(FlushTarget("namespace", ns.name, selector))
    if soft:
        check_soft(policy, targets)
    return tuple(targets)


def check_soft(policy: Policy, targets: Sequence[FlushTarget]) -> None:
    """UsageError unless every target is a namespace (or key) with a stale window."""
    for target in targets:
        if target.kind == "pattern":
            raise UsageError("--soft needs a namespace's stale window; --pattern has none",
                             hint="use --namespace or --tag with --soft")
        ns = policy.namespace(target.name)
        if ns.stale_ms <= 0 or soft_expire_pttl_ms(ns) <= 0:
            raise UsageError(
                f"namespace {ns.name!r} has no stale window, so it cannot be soft-flushed",
                hint=f"drop --soft to remove its keys, or give {ns.name} a `stale:` "
                "duration in the policy")


def _key_target(policy: Policy, name: str, params: Sequence[str]) -> FlushTarget:
    ns = policy.namespace(name)
    values: dict[str, str] = {}
    for item in params:
        param, sep, value = item.partition("=")
        if not sep or not param:
            first = ns.template.placeholders[0] if ns.template.placeholders else "id"
            raise UsageError(f"{item!r} is not PARAM=VALUE", hint=f"e.g. --key {name} {first}=42")
        if param not in ns.template.placeholders:
            raise UsageError(
                f"namespace {name!r} has no placeholder {{{param}}}",
                hint=f"its key is {ns.template.source!r}; placeholders: "
                f"{', '.join(ns.template.placeholders) or '(none)'}")
        values[param] = value
    try:
        rendered = ns.template.render(values)
    except KeyParamError as exc:
        raise UsageError(str(exc), hint=f"e.g. --key {name} "
                         + " ".join(f"{p}=…" for p in ns.template.placeholders)) from None
    return FlushTarget("key", ns.name, f"key {rendered}", key=rendered.encode())


def _pattern_target(policy: Policy, pattern: str, *, force: bool, soft: bool) -> FlushTarget:
    if not force:
        raise UsageError("--pattern removes keys no namespace vouches for; it needs --force",
                         hint="prefer --namespace or --tag; add --force if you mean it")
    if soft:
        check_soft(policy, [FlushTarget("pattern", pattern, f"pattern {pattern}")])
    if matches_everything(pattern):
        raise UsageError(f"--pattern {pattern!r} would match every key; refused",
                         hint="give a literal part, e.g. --pattern 'shop:tmp:*'; "
                         "cachectl never empties a whole database")
    if matches_policy_keyspace(policy, pattern):
        raise UsageError(
            f"--pattern {pattern!r} would match every key of every namespace of the policy "
            "(and keys of others under it); refused",
            hint="name what to flush: --namespace NS or --tag TAG (repeatable); a --pattern "
            "must single out keys, e.g. --pattern 'shop:tmp:*'")
    return FlushTarget("pattern", pattern, f"pattern {pattern}")


# placeholder values of every shape a key segment takes: digits, letters, punctuation,
# long, non-ASCII; a glob that matches the keys made from all of them matches the namespace
_SAMPLE_VALUES = ("0", "x", "Zq", "a-b_c.d", "9" * 40, "é", "A1b2")


def matches_policy_keyspace(policy: Policy, pattern: str) -> bool:
    """Whether the glob matches every key of every namespace: reasoned on keys built from
    each namespace's template with placeholder values of every shape, not on how many
    literal characters the glob has (``*:*`` has one, and matches every ``shop:…`` key)."""
    matches = glob_matcher(pattern)
    for ns in policy:
        names = ns.template.placeholders
        for shift in range(len(_SAMPLE_VALUES)):
            values = {name: _SAMPLE_VALUES[(shift + i) % len(_SAMPLE_VALUES)]
                      for i, name in enumerate(names)}
            if not matches(ns.template.render(values).encode()):
                return False
    return True


def matches_everything(pattern: str) -> bool:
    """Whether a Redis glob has no literal character at all (``*``, ``?*``, ``[a-z]*``…).

    Such a glob matches every key, or nearly every key, of any keyspace.
    """
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            return False  # an escaped character is a literal
        if ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                return False  # an unclosed '[' is a literal to Redis
            i = end + 1
            continue
        if ch not in GLOB_SPECIALS:
            return False
        i += 1
    return True


def describe(targets: Sequence[FlushTarget]) -> str:
    """The operator's selection in words: ``tag catalog (product, price)``."""
    parts: dict[str, list[str]] = {}
    for t in targets:
        parts.setdefault(t.selector, []).append(t.name)
    return "; ".join(sel if sel.startswith(("namespace ", "key ", "pattern "))
                     else f"{sel} ({', '.join(names)})" for sel, names in parts.items())
