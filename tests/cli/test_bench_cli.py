"""cachectl bench on the command line: --json shape, usage errors, plot, text output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachectl.cli import main

# p99 limits no loaded machine misses: these tests check the output, not this machine's speed
# (the verdict itself is tested with injected latency in tests/integration/test_bench.py)
POLICY = """\
version: 1
redis: {key_prefix: shop}
thresholds:
  latency_p99_ms: {cached: 5000, hot: 2000}
namespaces:
  product: {key: "product:{id}", ttl: 1h, stale: 10m}
  price: {key: "price:{sku}", ttl: 5m}
"""
FAST = ["--requests", "100", "--warmup", "0s", "--keys", "20", "--value-size", "64B"]


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    return path


def test_json_document_shape(policy: Path, redis_url: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "-p", str(policy), "--url", redis_url, "--mode", "hot", "--mode",
                 "cached", "--json", *FAST])
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert code == 0
    assert doc["passed"] is True
    assert doc["keys_written"] == 40 and doc["keys_removed"] == 40 and doc["kept"] is False
    assert [(r["namespace"], r["mode"]) for r in doc["runs"]] == [
        ("product", "hot"), ("product", "cached"), ("price", "hot"), ("price", "cached")]
    run = doc["runs"][0]
    assert set(run["latency"]) == {"count", "min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms",
                                   "p999_ms", "max_ms"}
    assert run["latency"]["count"] == run["requests"] == 100
    assert run["threshold"] == "latency_hot_p99_ms" and run["threshold_p99_ms"] == 2000
    assert doc["runs"][1]["threshold"] == "latency_cached_p99_ms"
    assert run["verdict"] == "PASS" and run["reasons"] == []
    assert run["working_set"] == 10 and doc["runs"][1]["working_set"] == 20
    curve = run["percentile_curve"]
    assert curve[-1]["percentile"] == 100.0
    assert curve[-1]["latency_ms"] == run["latency"]["max_ms"]
    assert "redis://" in doc["server"]


def test_text_output_has_table_and_histogram(policy: Path, redis_url: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "-p", str(policy), "--url", redis_url, "-n", "price", *FAST])
    out = capsys.readouterr().out
    assert code == 0
    assert "price" in out and "cached" in out and "PASS" in out
    assert "ms |#" in out  # the text histogram
    assert "benchmark keys: 20 written, 20 removed" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--duration", "1s", "--requests", "10"], "exclude each other"),
    (["--mode", "warm"], "--mode 'warm'"),
    (["--existing", "--mode", "mixed"], "reads only"),
    (["--distribution", "zipf:-1"], "uniform or zipf:S"),
    (["--read-ratio", "1.5"], "between 0 and 1"),
    (["--value-size", "lots"], "not a size"),
    (["--clients", "0"], "at least 1"),
    (["--plot", "out.txt"], "unknown format"),
    (["-n", "prodcut"], "did you mean 'product'"),
])
def test_bad_invocations_exit_2(policy: Path, redis_url: str, args: list[str], message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "-p", str(policy), "--url", redis_url, *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_unreachable_server_exits_3(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "-p", str(policy), "--url", "redis://:hunter2@127.0.0.1:1/0",
                 "--timeout", "1", *FAST])
    err = capsys.readouterr().err
    assert code == 3
    assert "hunter2" not in err and "error:" in err


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_plot_draws_the_percentile_curve(policy: Path, redis_url: str, tmp_path: Path,
                                         suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / f"latency{suffix}"
    code = main(["bench", "-p", str(policy), "--url", redis_url, "-n", "price", "--plot",
                 str(target), *FAST])
    assert code == 0
    data = target.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG")
    else:
        assert b"<svg" in data and b"cachectl bench" in data
    assert f"wrote {target}" in capsys.readouterr().err


def test_interrupt_shows_the_finished_runs_and_exits_130(
        policy: Path, redis_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cachectl.bench import runner

    real = runner._run_one
    calls = []

    def second_run_interrupted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "_run_one", second_run_interrupted)
    code = main(["bench", "-p", str(policy), "--url", redis_url, "--json", *FAST])
    out, err = capsys.readouterr()
    assert code == 130
    doc = json.loads(out)
    assert doc["interrupted"] is True
    assert [r["namespace"] for r in doc["runs"]] == ["product"]
    assert doc["keys_removed"] == 40  # both namespaces' keys: price's were loaded already
    assert "error: benchmark interrupted; its 40 keys were removed" in err


def test_plot_without_matplotlib_is_a_clear_usage_error(
        policy: Path, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code = main(["bench", "-p", str(policy), "--url", redis_url, "--plot",
                 str(tmp_path / "x.png"), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "--plot needs matplotlib" in err and "cachectl-redis[plot]" in err
    assert not (tmp_path / "x.png").exists()
