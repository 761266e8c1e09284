"""Built as a release is built (sdist, then the wheel from the sdist), installed into a fresh
venv outside the checkout, the demo runs; the sdist carries the tests and can run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.support.checkout import clean_copy
from tests.support.demo import assert_steps_behaved, json_exits
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    source = clean_copy(tmp_path_factory.mktemp("source") / "cachectl")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                   check=True, capture_output=True, timeout=600)
    return out


def _only(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_the_wheel_carries_the_demo_data_and_not_the_tests(dist: Path) -> None:
    names = zipfile.ZipFile(_only(dist, "cachectl_redis-*.whl")).namelist()
    for path in ("cachectl/demo_data/policies/ecommerce.yaml", "cachectl/py.typed",
                 *(f"cachectl/demo_data/examples/seeds/{n}" for n in (
                     "products.jsonl", "categories.json", "prices.csv", "stock.csv"))):
        assert path in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(_only(dist, "*.whl")).read(metadata).decode()
    assert "Name: cachectl-redis" in text and "License-Expression: Apache-2.0" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_installed_wheel_runs_the_demo_outside_the_checkout(
        dist: Path, tmp_path: Path, redis_server: RedisServer) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = _only(dist, "*.whl")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    f"{wheel}[demo]"], check=True, capture_output=True, timeout=600)
    redis_server.client().flushall()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYTHONPATH")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([str(venv / "bin" / "cachectl"), "demo", "--quick", "--json",
                           "--url", redis_server.url], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.stdout.startswith("{"), done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert_steps_behaved(json_exits(summary), done.stderr, done.returncode)
    assert summary["passed"] is (done.returncode == 0)
    # the policy it ran is the installed copy, not this checkout's
    assert str(venv) in done.stderr and str(ROOT) not in done.stderr


def test_the_sdist_carries_the_tests_and_docs_and_runs_them(dist: Path, tmp_path: Path) -> None:
    with tarfile.open(_only(dist, "*.tar.gz")) as sdist:
        sdist.extractall(tmp_path, filter="data")
    unpacked = _only(tmp_path, "cachectl_redis-*")
    for path in ("LICENSE", "README.md", "docs/policy.md", "tests/conftest.py",
                 "tests/lint_cases", "policies/ecommerce.yaml", "examples/seeds/products.jsonl"):
        assert (unpacked / path).exists(), path
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    imported = subprocess.run([sys.executable, "-c", "import cachectl; print(cachectl.__file__)"],
                              cwd=unpacked, env=env, capture_output=True, text=True, check=True)
    assert imported.stdout.startswith(str(unpacked))  # the tests below test the sdist's code
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         "tests/unit/test_lint_cases.py", "tests/unit/test_units.py"],
        cwd=unpacked, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout
