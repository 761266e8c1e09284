"""The library's trace sampler and buffer (cachectl/cache/trace.py), without a server."""

from __future__ import annotations

from typing import Any

from cachectl.cache import trace as trace_module
from cachectl.cache.trace import Tracer, stream_keys
from cachectl.model import keeps_key, key_hash
from cachectl.policy.model import TraceSettings


class RecordingPipe:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def xadd(self, name: str, fields: dict[str, str], maxlen: int, approximate: bool) -> None:
        self.calls.append((name, fields, maxlen, approximate))


def test_the_sample_is_the_models_and_the_remembered_decisions_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(trace_module, "MEMO_KEYS", 100)
    tracer = Tracer(TraceSettings(0.05, 1000), "shop:cachectl")
    keep = keeps_key(0.05)
    keys = [f"shop:p:{i}" for i in range(3000)]
    for _ in range(2):  # the second pass reads remembered decisions for the last ones
        got = [tracer.sampled(k) for k in keys]
        assert got == [key_hash(k.encode()) if keep(key_hash(k.encode())) else None for k in keys]
        assert len(tracer._memo) <= 100
    assert 90 < sum(h is not None for h in got) < 220  # ~5 % of 3000


def test_events_are_capped_xadds_spread_over_the_shard_streams() -> None:
    tracer = Tracer(TraceSettings(1.0, 2000), "shop:cachectl", wall_clock=lambda: 12.5)
    for h in range(8):
        tracer.record("product", h, 10 + h, "miss", 3.25)
    tracer.record("product", 3, None, "fresh")  # the size it was last recorded with
    pipe = RecordingPipe()
    tracer.write(pipe, tracer.drain())
    assert {c[0] for c in pipe.calls} == set(stream_keys("shop:cachectl")) == {
        f"shop:cachectl:trace:{{{n}}}" for n in range(4)}
    assert all(c[2] == 500 and c[3] is True for c in pipe.calls)  # MAXLEN ~ 2000 / 4
    assert pipe.calls[0][1] == {"t": "12.500000", "ns": "product", "h": "0", "s": "10", "o": "miss",
                                "r": "1.0", "l": "3.250"}
    assert pipe.calls[-1][1] == {"t": "12.500000", "ns": "product", "h": "3", "s": "13", "o": "fresh",
                                 "r": "1.0"}
    assert not tracer.pending and tracer.dropped == 0


def test_every_dropped_event_is_reported_with_its_namespace(monkeypatch: Any) -> None:
    dropped: list[tuple[str, int]] = []
    tracer = Tracer(TraceSettings(1.0, 2000), "shop:cachectl",
                    on_drop=lambda namespace, n: dropped.append((namespace, n)))
    monkeypatch.setattr(trace_module, "MAX_BUFFERED", 2)
    for ns in ("product", "price", "price", "product"):  # the buffer holds the first two
        tracer.record(ns, 1, 1, "fresh")
    assert dropped == [("price", 1), ("product", 1)]
    events = tracer.drain()
    tracer.lost(events + events)  # a failed write: counted per namespace, in one call each
    assert sorted(dropped[2:]) == [("price", 2), ("product", 2)]
    assert tracer.dropped == 6 and not tracer.pending
