"""Which keys a warm has sent, so that a second row with the same key is refused (the first is kept).

A set of every key's hash costs about 60 bytes a row: 600 MB for a warm of 10M rows. Yet most
sources hand their rows over in id order (an export, ``SELECT … ORDER BY id``), and a key made
from one int id (``product:{id}``) is known by its id. So ids are kept as runs of consecutive
ids while they rise row after row: a source in id order costs a few bytes a gap, whatever its
length. An id that comes out of order goes to a set of ints, and every other key (made from
text, or from several fields) to a set of 64-bit key hashes, as before. Exact either way: a key
is in exactly one of the three, decided by its bytes alone (``head + canonical int + tail``).
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from itertools import islice
from operator import lt

_INT64 = (-(1 << 63), (1 << 63) - 1)
# an int as str() writes it: what head + id + tail holds for an int id
_CANONICAL_INT = re.compile(rb"-?(?:0|[1-9][0-9]*)\Z", re.ASCII)
_INT_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z", re.ASCII).match


class SeenKeys:
    """The keys sent so far: runs of rising int ids, out-of-order ids, hashes of other keys."""

    __slots__ = ("ends", "hashes", "head", "ids", "starts", "tail", "top")

    def __init__(self, head: bytes | None = None, tail: bytes = b"") -> None:
        # head/tail: a key's bytes around its one int id (the template's single placeholder);
        # None: the template has no such form, every key is hashed
        self.head = head
        self.tail = tail
        self.starts = array("q")  # runs [starts[j], ends[j]] of ids, ascending and disjoint
        self.ends = array("q")
        self.top: int | None = None  # the highest id in a run (every out-of-order id is below)
        self.ids: set[int] = set()
        self.hashes: set[int] = set()

    def __len__(self) -> int:
        runs = sum(e - s + 1 for s, e in zip(self.starts, self.ends, strict=True))
        return runs + len(self.ids) + len(self.hashes)

    def id_of(self, key: bytes) -> int | None:
        """The int id ``key`` is made of (head + id + tail), else None."""
        head, tail = self.head, self.tail
        if head is None or not key.startswith(head) or not key.endswith(tail) \
                or len(key) <= len(head) + len(tail):
            return None
        middle = key[len(head):len(key) - len(tail)]
        if middle == b"-0" or not _CANONICAL_INT.match(middle):
            return None
        return int(middle)

    def add_key(self, key: bytes) -> bool:
        """Record ``key``; False when it was sent already."""
        found = self.id_of(key)
        if found is not None:
            return self.add_id(found)
        fingerprint = hash(key)
        if fingerprint in self.hashes:
            return False
        self.hashes.add(fingerprint)
        return True

    def add_id(self, i: int) -> bool:
        """Record the key of int id ``i``; False when it was sent already."""
        if not _INT64[0] <= i <= _INT64[1]:  # beyond a run's 64 bits: the set, always
            if i in self.ids:
                return False
            self.ids.add(i)
            return True
        top = self.top
        if top is None or i > top:
            if top is not None and i == top + 1:
                self.ends[-1] = i
            else:
                self.starts.append(i)
                self.ends.append(i)
            self.top = i
            return True
        if i in self.ids or self._in_runs(i):
            return False
        self.ids.add(i)
        return True

    def _in_runs(self, i: int) -> bool:
        j = bisect_right(self.starts, i) - 1
        return j >= 0 and i <= self.ends[j]

    def add_ids(self, ids: list[int]) -> bool:
        """Record a chunk of ids, all or none: False (nothing recorded) when one was sent
        already or the chunk holds one twice. The usual chunk, rising from above every id
        so far, costs a comparison per id and no set."""
        top, first, last = self.top, ids[0], ids[-1]
        if (top is None or first > top) and first >= _INT64[0] and last <= _INT64[1] \
                and all(map(lt, ids, islice(ids, 1, None))):
            if last - first == len(ids) - 1:  # consecutive: one run, or the last one longer
                if top is not None and first == top + 1:
                    self.ends[-1] = last
                else:
                    self.starts.append(first)
                    self.ends.append(last)
                self.top = last
                return True
            for i in ids:
                self.add_id(i)
            return True
        if len(set(ids)) != len(ids) or any(map(self._sent, ids)):
            return False
        for i in ids:
            self.add_id(i)
        return True

    def _sent(self, i: int) -> bool:
        if i in self.ids:
            return True
        return _INT64[0] <= i <= _INT64[1] and self._in_runs(i)

    def add_texts(self, parts: list[str], keys: list[bytes]) -> bool:
        """Record a chunk of keys made from text parts (``keys[i]`` from ``parts[i]``), all
        or none, like ``add_ids``; a part that is an int's text is recorded as that id."""
        if self.head is not None and any(map(_INT_TEXT, parts)):
            ids = [int(p) for p in parts if _INT_TEXT(p) and p != "-0"]
            others = [k for p, k in zip(parts, keys, strict=True) if not (_INT_TEXT(p) and p != "-0")]
        else:
            ids, others = [], keys
        fingerprints = set(map(hash, others))
        if len(fingerprints) != len(others) or not self.hashes.isdisjoint(fingerprints) \
                or (ids and (len(set(ids)) != len(ids) or any(map(self._sent, ids)))):
            return False
        self.hashes.update(fingerprints)
        for i in ids:
            self.add_id(i)
        return True
