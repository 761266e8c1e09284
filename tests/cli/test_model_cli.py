"""`cachectl model`: the JSON document, the table, the readers, and bad traces without tracebacks."""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import pytest

from cachectl.cli import main

pytest.importorskip("numba")

POLICY = (
    "version: 1\nredis: {key_prefix: shop}\n"
    "namespaces:\n"
    '  product: {key: "product:{id}", ttl: 1m, stale: 10s, critical: true}\n'
    '  price: {key: "price:{sku}", ttl: 30s, jitter: 10%}\n'
)


def write_policy(tmp_path: Path) -> str:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    return str(path)


def csv_trace(tmp_path: Path, rows: int = 3000, name: str = "t.csv") -> Path:
    """One access every 50 ms, alternating: product:0..49 (each read every 5 s), price:0..499 (every
    50 s); sizes 100..149 B."""
    lines = ["time,key,size"]
    for i in range(rows):
        key = f"shop:product:{(i // 2) % 50}" if i % 2 == 0 else f"price:{(i // 2) % 500}"
        lines.append(f"{i * 0.05:.2f},{key},{100 + i % 50}")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["model", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_document_has_the_documented_fields(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["-p", write_policy(tmp_path), "--trace", str(csv_trace(tmp_path)),
                          "--ttl", "1s,10s,1m,5m", "--memory", "64KiB", "--json"], capsys)
    doc = json.loads(out)
    assert err == ""
    assert doc["requests"] == 3000 and doc["sample_rate"] == 1.0 and doc["sampled"] is False
    by_name = {n["namespace"]: n for n in doc["namespaces"]}
    assert set(by_name) == {"product", "price"}
    product = by_name["product"]
    assert product["requests"] == 1500 and product["sample_rate"] == 1.0 and product["keys"] == 50
    assert [p["ttl_s"] for p in product["ttl_curve"]] == [1.0, 10.0, 60.0, 300.0]
    for field in ("ttl_s", "hit_rate", "stale_rate", "load_rate_per_s", "resident_bytes"):
        assert field in product["ttl_curve"][0]
    for field in ("bytes", "hit_rate", "byte_hit_rate"):
        assert field in product["memory_curve"][0]
    # each product key read every 5 s: with a 1 s TTL and a 10 s stale window only its first read
    # misses, every later one is served stale (and refreshes it): the stale share rules 1 s out
    first = product["ttl_curve"][0]
    assert first["hit_rate"] == pytest.approx(1 - 50 / 1500)
    assert first["stale_rate"] == pytest.approx(1450 / 1500)
    assert first["load_rate_per_s"] == pytest.approx(1500 / 149.95)
    # 10 s: every second read is stale (14 of a key's 30); 1 m: one in 12, within max_stale_ratio
    assert product["ttl_curve"][1]["stale_rate"] == pytest.approx(14 * 50 / 1500)
    assert product["recommend"]["ttl_s"] == 60.0
    assert product["recommend"]["hit_rate"] == pytest.approx(1 - 50 / 1500)
    assert product["recommend"]["memory_bytes"] > 0
    # price: 500 keys, each read 3 times 50 s apart: a 5 m TTL hits 2 reads of 3, short of 80 %
    price = by_name["price"]
    assert price["recommend"]["ttl_s"] is None
    assert price["recommend"]["best_hit_rate"] == pytest.approx(2 / 3)
    assert price["recommend"]["best_ttl_s"] == 300.0
    assert [p["hit_rate"] for p in price["ttl_curve"]] == pytest.approx([0, 0, 1 / 3, 2 / 3])
    assert doc["evaluations"][0]["bytes"] == 65536
    assert code == 1 and doc["meets_thresholds"] is False and doc["maxmemory_bytes"] is None
    assert [h["key"] for h in product["hot_keys"]][:1][0].startswith("shop:product:")


def test_unreachable_threshold_gives_nulls_and_exit_1(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # every key read once: nothing is ever a hit
    trace = tmp_path / "once.jsonl"
    trace.write_text("".join(json.dumps({"time": i, "key": f"shop:price:{i}", "size": 10}) + "\n"
                             for i in range(200)))
    code, out, _ = run(["-p", write_policy(tmp_path), "--trace", str(trace), "--json"], capsys)
    doc = json.loads(out)
    price = doc["namespaces"][0]
    assert code == 1
    assert price["recommend"]["ttl_s"] is None and price["recommend"]["memory_bytes"] is None
    assert doc["maxmemory_bytes"] is None


def test_table_shows_recommendation_and_charts(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["-p", write_policy(tmp_path), "--trace", str(csv_trace(tmp_path)),
                        "--ttl", "1s,10s,1m"], capsys)
    assert code in (0, 1)
    assert "product: ttl 1m -> hit rate 96.7% > 95.0%" in out
    assert "price: no TTL reaches 80.0%" in out
    assert "hit rate by ttl" in out and "hit rate by size" in out
    assert "exact: every event" in out


def test_gz_zst_and_oracle_general_read_the_same(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    zstandard = pytest.importorskip("zstandard")
    plain = csv_trace(tmp_path)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    zst = tmp_path / "t.csv.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    policy = write_policy(tmp_path)
    docs = []
    for path in (plain, gz, zst):
        run(["-p", policy, "--trace", str(path), "--ttl", "10s", "--json"], capsys)
    for path in (plain, gz, zst):
        _, out, _ = run(["-p", policy, "--trace", str(path), "--ttl", "10s", "--json"], capsys)
        docs.append(json.loads(out)["namespaces"])
    assert docs[0] == docs[1] == docs[2]
    oracle = tmp_path / "ids.oracleGeneral"
    oracle.write_bytes(b"".join(struct.pack("<IQIq", i // 20, i % 50, 100, -1) for i in range(2000)))
    _, out, _ = run(["-p", policy, "--trace", str(oracle), "-n", "product", "--ttl", "10s",
                        "--json"], capsys)
    doc = json.loads(out)
    assert doc["requests"] == 2000 and doc["namespaces"][0]["keys"] == 50
    assert doc["namespaces"][0]["hot_keys"][0]["key"] is None


@pytest.mark.parametrize(("content", "message"), [
    ("time,key,size\n1,shop:price:1,10\n0.5,shop:price:2,10\n",
     "record 2: time goes backwards (0.5 s after 1 s)"),
    ("time,key,size\n1,shop:price:1,-4\n", "record 1: negative size -4"),
    ("time,key,size\n1,shop:price:1,10\n2,shop:cart:1,10\n",
     "record 2: key 'shop:cart:1' matches no namespace of the policy"),
    ("time,key,size,namespace\n1,x,10,product\n2,y,10,carts\n", "record 2: unknown namespace 'carts'"),
    ("time,key\n1,x\n", "the CSV header lacks size"),
    ("time,key,size\nsoon,shop:price:1,10\n", "record 1: time 'soon' is not a number of seconds"),
])
def test_bad_csv_records_name_the_record(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         content: str, message: str) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text(content)
    code, out, err = run(["-p", write_policy(tmp_path), "--trace", str(trace)], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_truncated_oracle_record_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "cut.oracleGeneral"
    trace.write_bytes(struct.pack("<IQIq", 1, 7, 100, -1) * 3 + b"\x00" * 10)
    code, _, err = run(["-p", write_policy(tmp_path), "--trace", str(trace), "-n", "price"], capsys)
    assert code == 2
    assert "record 4: truncated (10 of 24 bytes)" in err and "Traceback" not in err


def test_oracle_trace_needs_a_namespace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "ids.bin"
    trace.write_bytes(struct.pack("<IQIq", 1, 7, 100, -1))
    code, _, err = run(["-p", write_policy(tmp_path), "--trace", str(trace)], capsys)
    assert code == 2 and "--namespace NS" in err


@pytest.mark.parametrize(("flags", "message"), [
    (["--ttl", "soon"], "--ttl 'soon'"),
    (["--memory", "0"], "--memory '0' must be positive"),
    (["--sample", "200%"], "--sample 200% is not in (0, 100%]"),
    (["--sample", "1%", "--exact"], "--sample and --exact exclude each other"),
    (["--memory", "99999999999999999999999"], "--memory '99999999999999999999999' is above"),
    (["--memory", "9223372036854775807"], "is above 1,125,899,906,842,624"),
    (["--key-overhead", "99999999999999999"], "--key-overhead must be between 0 and 1,048,576 bytes"),
    (["--key-overhead", "-1"], "--key-overhead must be between 0"),
    (["--plot", "curves.csv"], "--plot curves.csv: the file name must end in .png, .svg, .pdf"),
])
def test_bad_flags_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str],
                          message: str) -> None:
    code, _, err = run(["-p", write_policy(tmp_path), "--trace", str(csv_trace(tmp_path, 10)), *flags],
                       capsys)
    assert code == 2 and message in err
    assert "internal error" not in err


def test_missing_trace_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["-p", write_policy(tmp_path), "--trace", str(tmp_path / "nope.csv")], capsys)
    assert code == 2 and "cannot open trace" in err


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    code, _, _ = run(["-p", write_policy(tmp_path), "--trace", str(csv_trace(tmp_path)), "--ttl", "10s",
                      "--plot", str(png), "--json"], capsys)
    assert code in (0, 1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_url_measures_the_key_overhead_on_live_keys(tmp_path: Path, redis_url: str, redis_client: object,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import redis

    assert isinstance(redis_client, redis.Redis)
    for i in range(300):
        redis_client.set(f"shop:product:{i}", "x" * 1000, ex=600)
    code, out, err = run(["-p", write_policy(tmp_path), "--trace", str(csv_trace(tmp_path)), "--ttl", "10s",
                          "--url", redis_url, "--json"], capsys)
    doc = json.loads(out)
    assert code == 1, err
    # 200 keys shared by two namespaces, and price has none
    assert doc["key_overhead_source"].startswith("MEMORY USAGE minus STRLEN of 100 live keys")
    assert 100 < doc["key_overhead_bytes"] < 400


def test_unreachable_url_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["-p", write_policy(tmp_path), "--trace", str(csv_trace(tmp_path, 10)),
                        "--url", "redis://127.0.0.1:1/0"], capsys)
    assert code == 3 and "Traceback" not in err


def test_compressed_sizes_buy_hits_at_the_same_maxmemory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # what `cachectl inspect --compression --json` recommends: product at 4x from 120 B
    (tmp_path / "compression.json").write_text(json.dumps({"namespaces": [
        {"namespace": "product", "recommended": {"ratio": 4.0, "min_bytes": 120}},
        {"namespace": "price", "recommended": None}]}))
    # between two reads of a product key: 50 product and 50 price values, ~12.5 KB plain,
    # ~8 KB with the product values compressed (no per-key overhead, to see the values alone)
    args = ["-p", write_policy(tmp_path), "--trace", str(csv_trace(tmp_path)), "--ttl", "5m",
            "--memory", "10KiB", "--key-overhead", "0", "--json"]
    _, plain, _ = run(args, capsys)
    _, compressed, _ = run([*args, "--compression", str(tmp_path / "compression.json")], capsys)

    def at_10kib(doc: str, name: str) -> float:
        [ns] = [n for n in json.loads(doc)["namespaces"] if n["namespace"] == name]
        [point] = [p for p in ns["memory_curve"] if p["bytes"] == 10240]
        return float(point["hit_rate"])

    assert at_10kib(plain, "product") < 0.1 < 0.9 < at_10kib(compressed, "product")
    code, _, err = run([*args, "--compression", str(tmp_path / "t.csv")], capsys)
    assert code == 2 and "--compression" in err


def test_a_fifo_trace_is_refused_not_waited_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    code, _, err = run(["-p", write_policy(tmp_path), "--trace", str(fifo)], capsys)
    assert code == 2
    assert "cannot open trace" in err and "a FIFO (named pipe), not a regular file" in err


def test_zst_traces_cut_short_or_corrupt_are_exit_2_and_frames_concatenate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zstandard = pytest.importorskip("zstandard")
    policy = write_policy(tmp_path)
    packed = zstandard.ZstdCompressor().compress(csv_trace(tmp_path).read_bytes())
    oracle = b"".join(struct.pack("<IQIq", i, i % 50, 100, -1) for i in range(3000))
    cases = {"cut.csv.zst": packed[: len(packed) // 2],
             "cut.oracleGeneral.zst": zstandard.ZstdCompressor().compress(oracle)[:3000],
             "noise.csv.zst": bytes(range(256)) * 8}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        code, out, err = run(["-p", policy, "--trace", str(tmp_path / name), "-n", "price"], capsys)
        assert code == 2 and out == "", name
        expected = "not zstd data, or corrupt" if name.startswith("noise") else \
            "the file ends inside a zstd frame (cut short?)"
        assert f"{name}: cannot read: {expected}" in err and "internal error" not in err
    # two frames back to back (zstd -T, or cat a.zst b.zst) are read as one stream
    half = csv_trace(tmp_path, 1000).read_text()
    rest = "".join(f"{100 + i * 0.05:.2f},price:{i % 7},10\n" for i in range(500))
    two = tmp_path / "two.csv.zst"
    two.write_bytes(zstandard.ZstdCompressor().compress(half.encode())
                    + zstandard.ZstdCompressor().compress(rest.encode()))
    code, out, err = run(["-p", policy, "--trace", str(two), "--ttl", "10s", "--json"], capsys)
    assert code in (0, 1), err
    assert json.loads(out)["requests"] == 1500


def test_model_runs_where_numba_cannot_cache(tmp_path: Path) -> None:
    """A read-only install run by a user without a writable home: numba finds no folder for its
    cache and refuses cache=True (a RuntimeError at import, exit 70 before); the loops compile
    on every run instead. The child process sees no cache locator, as such a user would."""
    import subprocess
    import sys

    trace = csv_trace(tmp_path, 200)
    child = (
        "import sys\n"
        "from numba.core import caching\n"
        "caching.CacheImpl._locator_classes = []\n"
        "from numba import njit\n"
        "try:\n"
        "    njit(cache=True)(lambda x: x)\n"
        "    sys.exit('the child can still cache: the condition is not simulated')\n"
        "except RuntimeError:\n"
        "    pass\n"
        "from cachectl.cli import main\n"
        f"sys.exit(main(['model', '-p', {write_policy(tmp_path)!r}, '--trace', {str(trace)!r},\n"
        "                 '--ttl', '10s', '--json']))\n")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["requests"] == 200


def test_without_a_trace_or_a_url_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["-p", write_policy(tmp_path)], capsys)
    assert code == 2 and "no trace given" in err and "--url" in err


def test_url_without_a_captured_trace_exits_2(tmp_path: Path, redis_url: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["-p", write_policy(tmp_path), "--url", redis_url, "--key-overhead", "100"],
                       capsys)
    assert code == 2 and "no trace events under shop:cachectl:trace:*" in err and "trace:" in err


def test_a_stream_event_of_an_unknown_namespace_is_named(tmp_path: Path, redis_url: str, redis_client: object,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import redis

    assert isinstance(redis_client, redis.Redis)
    redis_client.xadd("shop:cachectl:trace:{1}", {"t": "1.5", "ns": "gone", "h": "7", "s": "3", "o": "miss",
                                                  "r": "1.0"})
    code, _, err = run(["-p", write_policy(tmp_path), "--url", redis_url, "--key-overhead", "100"], capsys)
    assert code == 2 and "shop:cachectl:trace:{1} entry" in err and "unknown namespace 'gone'" in err
    assert "Traceback" not in err


def test_sigterm_mid_model_exits_130_not_a_crash(tmp_path: Path) -> None:
    """A signal handler that raised while numba's dispatcher was in C crashed the process
    (exit 70, SystemError, or a segmentation fault); now it stops at the next step."""
    import signal
    import subprocess
    import sys
    import time

    trace = tmp_path / "big.oracleGeneral"
    rows = 1_500_000
    with trace.open("wb") as fh:
        for start in range(0, rows, 100_000):
            fh.write(b"".join(struct.pack("<IQIq", i // 100, (i * 7919) % 200_000, 100, -1)
                              for i in range(start, start + 100_000)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachectl", "model", "-p", write_policy(tmp_path), "--trace", str(trace),
         "-n", "price", "--exact"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    modelling = False
    while time.monotonic() < deadline and proc.poll() is None and not modelling:
        # the kernels run once the trace is read: wait until the process has read its bytes
        modelling = _bytes_read(proc.pid) > trace.stat().st_size
        time.sleep(0.05)
    assert modelling, "cachectl model never got to its kernels"
    time.sleep(1.0)  # into the compiled loops (a bare wait is fine here: any moment must work)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "internal error" not in err and "Traceback" not in err
    assert "stopping after the step in flight" in err
    assert out == ""


def _bytes_read(pid: int) -> int:
    try:
        fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    except OSError:
        return 0
    return int(fields["rchar"])
