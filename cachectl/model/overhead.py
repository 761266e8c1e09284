"""Measure the memory a key costs beyond its value on a live server (``--url``)."""

from __future__ import annotations

from typing import Any

from cachectl.policy.model import Policy

SAMPLE_KEYS = 200
# the main and expires dictionaries' share per key with a TTL, which MEMORY USAGE leaves out:
# used_memory per key (225 B) minus MEMORY USAGE beyond the value (171 B), 1 KiB strings on Redis
# 7.0.15 (docs/model.md)
DICT_SHARE_BYTES = 54


def measure_key_overhead(client: Any, policy: Policy, sample: int = SAMPLE_KEYS) -> tuple[int, str] | None:
    """MEMORY USAGE minus STRLEN over up to ``sample`` string keys of the policy's namespaces, plus the
    dictionaries' share; None when the server holds no such key. Read-only (no LRU touch)."""
    keys: list[bytes] = []
    per_namespace = max(1, sample // max(1, len(policy.namespaces)))
    for ns in policy.namespaces.values():
        for found, key in enumerate(client.scan_iter(match=ns.template.glob, count=1000,
                                                     _type="string"), start=1):
            keys.append(key)
            if found >= per_namespace:
                break
    if not keys:
        return None
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
        pipe.strlen(key)
    replies = pipe.execute(raise_on_error=False)
    extra = [int(mem) - int(length) for mem, length in zip(replies[::2], replies[1::2], strict=True)
             if isinstance(mem, int) and isinstance(length, int) and mem > 0]
    if not extra:
        return None
    overhead = round(sum(extra) / len(extra)) + DICT_SHARE_BYTES
    return overhead, (f"MEMORY USAGE minus STRLEN of {len(extra)} live keys, plus {DICT_SHARE_BYTES} B "
                      "of dictionary share per key")
