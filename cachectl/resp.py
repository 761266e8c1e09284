"""RESP replies from a raw socket: hiredis's reader when installed, else a pure-Python one.

warm (``warm/pipe.py``) and bench (``bench/worker.py``) write pre-encoded commands on a
socket and parse the replies themselves. hiredis is optional (the ``fast`` extra): it
has no wheel for every platform and interpreter, and without it both commands still
work, slower (``benchmarks/warm.py`` measures the difference). ``PythonReader`` has the
slice of hiredis.Reader's interface they use: ``feed(data[, offset, length])``,
``gets()`` (False until a whole reply is buffered; an error reply is returned as a
``ReplyError``, not raised) and ``has_data()``; RESP2 and RESP3 replies.
"""

from __future__ import annotations

from typing import Any

PARSER: str  # "hiredis" or "python", for reports


class PythonProtocolError(Exception):
    """The bytes are not RESP."""


class PythonReplyError(Exception):
    """An error reply (``-ERR …``); returned by ``gets``, as hiredis does."""


class _Incomplete(Exception):
    """The buffer ends inside a reply."""


_COMPACT_AT = 1 << 16


class PythonReader:
    """A RESP2 reply parser with the part of hiredis.Reader's interface cachectl uses."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: Any, offset: int = 0, length: int = -1) -> None:
        """Append ``data[offset:offset + length]`` (any bytes-like object) to the buffer."""
        view = memoryview(data)
        self._buf += view[offset:] if length < 0 else view[offset:offset + length]

    def has_data(self) -> bool:
        """Whether bytes not yet returned as a reply are buffered."""
        return self._pos < len(self._buf)

    def gets(self) -> Any:
        """The next whole reply, or False when the buffer holds only part of one."""
        try:
            reply, self._pos = self._parse(self._pos)
        except _Incomplete:
            return False
        if self._pos >= _COMPACT_AT or self._pos == len(self._buf):
            del self._buf[:self._pos]
            self._pos = 0
        return reply

    def _parse(self, pos: int) -> tuple[Any, int]:
        buf = self._buf
        end = buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete
        kind, line, pos = buf[pos], bytes(buf[pos + 1:end]), end + 2
        if kind in (0x2B, 0x28):  # +simple string, (big number (as bytes, as hiredis does)
            return line, pos
        if kind == 0x2D:  # -error
            return PythonReplyError(line.decode("utf-8", "replace")), pos
        if kind == 0x3A:  # :integer
            return int(line), pos
        if kind == 0x5F:  # _ null (RESP3: redis-py may have said HELLO 3 on this connection)
            return None, pos
        if kind == 0x23:  # #t / #f
            return line == b"t", pos
        if kind == 0x2C:  # ,double
            return float(line), pos
        if kind in (0x24, 0x21, 0x3D):  # $bulk string or $-1 nil, !blob error, =verbatim
            size = int(line)
            if size < 0:
                return None, pos
            if len(buf) < pos + size + 2:
                raise _Incomplete
            blob = bytes(buf[pos:pos + size])
            if kind == 0x21:
                return PythonReplyError(blob.decode("utf-8", "replace")), pos + size + 2
            return (blob[4:] if kind == 0x3D else blob), pos + size + 2  # =txt:…
        if kind in (0x2A, 0x7E, 0x3E, 0x25, 0x7C):  # *array, ~set, >push, %map, |attribute
            count = int(line)
            if count < 0:
                return None, pos
            items = []
            for _ in range(count * 2 if kind in (0x25, 0x7C) else count):
                item, pos = self._parse(pos)
                items.append(item)
            if kind == 0x7C:  # attributes annotate the reply that follows
                return self._parse(pos)
            if kind == 0x25:
                return dict(zip(items[::2], items[1::2], strict=True)), pos
            return items, pos
        raise PythonProtocolError(f"Protocol error, got {chr(kind)!r} as reply type byte")


Reader: Any
ReplyError: type[Exception]
ProtocolError: type[Exception]
try:
    import hiredis
except ImportError:
    Reader, ReplyError, ProtocolError = PythonReader, PythonReplyError, PythonProtocolError
    PARSER = "python"
else:
    Reader, ReplyError, ProtocolError = hiredis.Reader, hiredis.ReplyError, hiredis.ProtocolError
    PARSER = "hiredis"
