"""SeenKeys (cachectl/warm/seen.py) against a plain set of key bytes: the same answer to every
question, whatever the order of ids, their gaps, text ids that look like ints, or chunks."""

from __future__ import annotations

import resource
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachectl.warm.seen import SeenKeys

HEAD, TAIL = b"shop:product:", b":v1"

ids = st.one_of(st.integers(-5, 60), st.integers(-(2**70), 2**70))
texts = st.one_of(st.sampled_from(["0", "-0", "7", "007", "-3", "12", "x", "a1", "1e3", "+5", "٣"]),
                  st.text(min_size=1, max_size=4))
ops = st.lists(st.one_of(
    st.tuples(st.just("id"), ids),
    st.tuples(st.just("key"), texts),
    st.tuples(st.just("ids"), st.lists(ids, min_size=1, max_size=8)),
    st.tuples(st.just("rising"), st.tuples(st.integers(-5, 80), st.integers(1, 6), st.integers(1, 3))),
    st.tuples(st.just("texts"), st.lists(texts, min_size=1, max_size=6)),
), max_size=60)


def key_of(part: int | str) -> bytes:
    return HEAD + str(part).encode("utf-8", "surrogatepass") + TAIL


@settings(max_examples=400, deadline=None)
@given(ops)
def test_seen_keys_answers_as_a_set_of_keys_does(script: list[tuple[str, object]]) -> None:
    seen, reference = SeenKeys(HEAD, TAIL), set()
    for op, arg in script:
        if op == "id":
            assert isinstance(arg, int)
            assert seen.add_id(arg) == (key_of(arg) not in reference)
            reference.add(key_of(arg))
        elif op == "key":
            key = key_of(arg)  # type: ignore[arg-type]
            assert seen.add_key(key) == (key not in reference)
            reference.add(key)
        else:
            if op == "rising":
                start, count, step = arg  # type: ignore[misc]
                chunk: list[int | str] = list(range(start, start + count * step, step))
            else:
                chunk = list(arg)  # type: ignore[call-overload]
            keys = [key_of(p) for p in chunk]
            fresh = len(set(keys)) == len(keys) and reference.isdisjoint(keys)
            taken = seen.add_ids(chunk) if op in ("ids", "rising") else seen.add_texts(chunk, keys)  # type: ignore[arg-type]
            assert taken == fresh, (op, chunk)
            if taken:
                reference.update(keys)
        assert len(seen) == len(reference)


def test_a_key_without_the_int_form_is_hashed_and_found_again() -> None:
    seen = SeenKeys()  # a template with several fields: no int form
    assert seen.add_key(b"a:1:b:2") and not seen.add_key(b"a:1:b:2")
    assert seen.add_key(b"a:1:b:3")


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
def test_ten_million_ids_in_order_take_no_memory() -> None:
    """A source in id order, with gaps every thousand ids: 10M ids, a few hundred KiB."""
    seen = SeenKeys(HEAD, TAIL)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for start in range(0, 10_000_000, 64):
        chunk = [i + i // 1000 for i in range(start, start + 64)]
        assert seen.add_ids(chunk)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert len(seen) == 10_000_000
    assert len(seen.starts) <= 10_001 and not seen.ids and not seen.hashes
    assert grown_kib < 4096, f"{grown_kib} KiB for 10M ids in order"
    assert not seen.add_id(5_000_000) and not seen.add_key(key_of(42))
