"""Prometheus's own tools for tests: promtool, and a throwaway Prometheus server on a free port.

./scripts/test installs Debian's ``prometheus`` package (which ships both) when it can;
where neither is on PATH, the tests that need them skip and say why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.redis_server import free_port

INSTALL_HINT = ("Prometheus is not installed: apt-get install prometheus (Debian/Ubuntu; it ships "
                "promtool too), or run ./scripts/test, which installs it when it can")


def binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``, or skip the test saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found. {INSTALL_HINT}")
    return path


def promtool(*args: str, cwd: Path | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; the result carries its exit code, stdout and stderr."""
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, cwd=cwd,
                          input=stdin, timeout=120, check=False)


class PrometheusServer:
    """One prometheus process on 127.0.0.1:<port> with a config written to ``workdir``."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.config = config
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(json.dumps(self.config))  # JSON is YAML
        log = self._log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen([
            binary("prometheus"), f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus did not start: {self.log()[-2000:]}")
            time.sleep(0.2)

    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> and return its ``data``."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
