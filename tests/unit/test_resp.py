"""cachectl.resp's pure-Python reader returns what hiredis returns, however the bytes arrive."""

from __future__ import annotations

import random

import hiredis
import pytest

from cachectl.resp import PythonProtocolError, PythonReader, PythonReplyError

STREAM = (b"+OK\r\n$5\r\nhello\r\n$-1\r\n:42\r\n:-7\r\n-ERR wrong type\r\n$0\r\n\r\n"
          b"*3\r\n$1\r\na\r\n:1\r\n*2\r\n+x\r\n$-1\r\n*0\r\n*-1\r\n$6\r\nab\r\ncd\r\n"
          + b"$100000\r\n" + b"v" * 100_000 + b"\r\n"
          # RESP3, which redis-py's connections may have negotiated (HELLO 3)
          b"_\r\n#t\r\n,1.5\r\n(12345678901234567890\r\n"
          b"=8\r\ntxt:some\r\n%2\r\n$1\r\nk\r\n:1\r\n$2\r\nk2\r\n_\r\n~2\r\n:1\r\n:2\r\n"
          b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n")


def _replies(reader: object, chunks: list[bytes]) -> list[object]:
    got: list[object] = []
    for chunk in chunks:
        reader.feed(chunk)  # type: ignore[attr-defined]
        while (reply := reader.gets()) is not False:  # type: ignore[attr-defined]
            got.append(str(reply) if isinstance(reply, Exception) else reply)
    return got


@pytest.mark.parametrize("seed", range(20))
def test_python_reader_matches_hiredis_on_any_split(seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(STREAM)), 12))
    chunks = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
    expected = _replies(hiredis.Reader(), chunks)
    assert len(expected) == 20
    assert _replies(PythonReader(), chunks) == expected


def test_python_reader_returns_error_replies_and_tracks_buffered_bytes() -> None:
    reader = PythonReader()
    reader.feed(bytearray(b"xx-ERR no\r\n+OK"), 2)
    assert isinstance(reply := reader.gets(), PythonReplyError) and str(reply) == "ERR no"
    assert reader.gets() is False and reader.has_data()
    reader.feed(b"\r\n")
    assert reader.gets() == b"OK" and not reader.has_data()


def test_python_reader_refuses_bytes_that_are_not_resp() -> None:
    reader = PythonReader()
    reader.feed(b"HTTP/1.1 400\r\n")
    with pytest.raises(PythonProtocolError):
        reader.gets()
