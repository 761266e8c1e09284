"""Open files a user names (a policy, a warm source, a password file) without hanging.

A FIFO blocks ``open()`` until a writer comes, and ``/dev/zero`` or ``/dev/urandom``
never end: named as a policy or a seed file they hung cachectl. ``open_regular`` asks
``stat`` first (which never blocks) and refuses anything but a regular file with an
``OSError`` whose ``strerror`` says what the path is, so every caller's existing
``except OSError`` reports it as an unreadable file (exit 2).
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
from pathlib import Path
from typing import IO, Any, cast

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular(path: Path, *, allow_fifo: bool = False) -> None:
    """Raise OSError unless ``path`` is a regular file (IsADirectoryError for a folder)."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
    if not (stat.S_ISREG(mode) or (allow_fifo and stat.S_ISFIFO(mode))):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise OSError(errno.EINVAL, f"{kind}, not a regular file", str(path))


def open_regular(path: Path, *, gz: bool = False, **options: Any) -> IO[bytes]:
    """Open a regular file for reading in binary (decompressed when ``gz``)."""
    check_regular(path)
    if gz:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return cast(IO[bytes], path.open("rb", **options))


def read_secret_text(path: Path, limit_bytes: int = 64 << 10) -> str:
    """A small file's UTF-8 text (UnicodeDecodeError if it is not UTF-8): a regular file, or
    a pipe (``--password-file <(vault read …)`` is how secrets are passed without a file)."""
    check_regular(path, allow_fifo=True)
    with path.open("rb") as fh:
        data = fh.read(limit_bytes + 1)
    if len(data) > limit_bytes:
        raise OSError(errno.EFBIG, f"larger than {limit_bytes >> 10} KiB", str(path))
    return data.decode("utf-8")
