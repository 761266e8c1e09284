"""A missing optional dependency is exit 2 naming the extra, never exit 70; without hiredis,
warm and bench parse replies in Python and work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

import cachectl.cli.app
from cachectl.cli import run
from tests.support.no_hiredis import env_without_hiredis

REPO = Path(__file__).resolve().parents[2]
ECOMMERCE = str(REPO / "policies" / "ecommerce.yaml")


def _cachectl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cachectl", *args], capture_output=True, text=True,
                          env=env_without_hiredis(tmp_path / "shadow"), timeout=120, check=False)


def test_the_shadow_really_hides_hiredis(tmp_path: Path) -> None:
    probe = _cachectl(tmp_path, "--version")
    assert probe.returncode == 0
    check = subprocess.run([sys.executable, "-c", "import cachectl.resp as r; print(r.PARSER)"],
                           capture_output=True, text=True, check=True,
                           env=env_without_hiredis(tmp_path / "shadow"))
    assert check.stdout.strip() == "python"


def test_warm_and_bench_work_without_hiredis(tmp_path: Path, redis_url: str,
                                             redis_client: redis.Redis) -> None:
    warm = _cachectl(tmp_path, "warm", "-p", ECOMMERCE, "--url", redis_url, "-n", "price", "--json")
    assert warm.returncode == 0, warm.stderr
    assert json.loads(warm.stdout)["written"] == 3000 == redis_client.dbsize()
    again = _cachectl(tmp_path, "warm", "-p", ECOMMERCE, "--url", redis_url, "-n", "price",
                      "--only-missing", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["written"] == 0  # NX replies (nil) parsed in Python
    bench = _cachectl(tmp_path, "bench", "-p", ECOMMERCE, "--url", redis_url, "-n", "product",
                      "--requests", "300", "--warmup", "0s", "--keys", "20", "--json")
    assert bench.returncode in (0, 1), bench.stderr
    report = json.loads(bench.stdout)
    assert report["runs"][0]["reads"] > 0 and report["runs"][0]["errors"] == 0
    for done in (warm, again, bench):
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("module", "hint"), [
    ("matplotlib", "pip install 'cachectl-redis[plot]'"),
    ("sqlalchemy.engine", "pip install 'cachectl-redis[sql]'"),
    ("yaml", "reinstall cachectl: pip install --force-reinstall 'cachectl-redis'"),
])
def test_a_missing_dependency_is_exit_2_naming_what_to_install(
        module: str, hint: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    class Importing:
        def main(self, **_: object) -> None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    monkeypatch.setattr(cachectl.cli.app, "build_command", lambda args: Importing())
    assert run(["stats"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: cachectl needs the Python module {module!r}, which is not installed\n"
                   f"hint: {hint}\n")


def test_a_missing_module_of_cachectl_itself_is_still_a_bug(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    class Broken:
        def main(self, **_: object) -> None:
            raise ModuleNotFoundError("No module named 'cachectl.nope'", name="cachectl.nope")

    monkeypatch.setattr(cachectl.cli.app, "build_command", lambda args: Broken())
    assert run(["stats"]) == 70
    assert "internal error" in capsys.readouterr().err
