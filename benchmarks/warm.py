"""Benchmark `cachectl warm` against `redis-cli --pipe` and a plain redis-py pipeline loop.

    .venv/bin/python benchmarks/warm.py                 # 1,000,000 product rows
    .venv/bin/python benchmarks/warm.py --rows 200000   # quicker
    .venv/bin/python benchmarks/warm.py --repeat 1      # one round (default: best of 3)

cachectl warm runs twice: as installed, and as if hiredis were not (it is optional;
``cachectl.resp`` parses the replies in Python then); and twice more with the namespace
compressed (``compress: {codec: zstd}``, then lz4), the same rows stored as frames.
Each contender writes the same keys (``bench:product:{id}``) with the same values (the
row as compact JSON) and ``PX`` TTLs, each on a fresh throwaway redis-server (never
6379). ``redis-cli --pipe`` is fed the commands pre-encoded (its input is built before
the clock starts); cachectl and the redis-py loop read the JSONL themselves. Wall time
of each whole process; peak RSS from the process's own rusage. Every contender runs once
per round, rounds interleaved, and each one's best round is compared (a machine shared
with other work only ever adds time, to whichever contender it happens to hit). Then CSV
and SQLite sources through cachectl. Working files live in benchmarks/.work/ (git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / ".work"
PY = sys.executable
CACHECTL = [PY, "-m", "cachectl.cli"] if not (REPO / ".venv/bin/cachectl").exists() else [
    str(REPO / ".venv/bin/cachectl")]
# tests.support and the seed generator are not installed
sys.path.insert(0, str(REPO / "examples" / "seeds"))
sys.path.insert(0, str(REPO))

from tests.support.no_hiredis import env_without_hiredis  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

TTL_MS = 3_600_000
JITTER = 0.10

POLICY = """\
version: 1
redis: {{key_prefix: bench}}
defaults: {{ttl: 1h, jitter: 10%}}
namespaces:
  product:
    key: "product:{{id}}"
    warm: {{source: {{type: jsonl, path: {jsonl}}}}}
  product_zstd:
    key: "productz:{{id}}"
    compress: {{codec: zstd}}
    warm: {{source: {{type: jsonl, path: {jsonl}}}}}
  product_lz4:
    key: "productl:{{id}}"
    compress: {{codec: lz4}}
    warm: {{source: {{type: jsonl, path: {jsonl}}}}}
  price:
    key: "price:{{sku}}"
    warm: {{source: {{type: csv, path: {csv}, columns: {{amount_cents: int}}}}}}
  product_db:
    key: "productdb:{{id}}"
    warm: {{source: {{type: sql, url: "sqlite:///{sqlite}", query: "SELECT * FROM products"}}}}
"""


@contextmanager
def fresh_server() -> Iterator[int]:
    """A throwaway redis-server on a free port, stopped and deleted afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="warm-bench-", dir=WORK))
    server = RedisServer(workdir).start()
    try:
        yield server.port
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def dbsize(port: int) -> int:
    out = subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


CPU_SECONDS: list[float] = []  # of the last run_measured process (user + system)


def run_measured(cmd: list[str], stdin_path: Path | None = None,
                 env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; (wall seconds, peak RSS MiB, stdout); its CPU seconds go to CPU_SECONDS."""
    stdin = stdin_path.open("rb") if stdin_path else subprocess.DEVNULL
    out = tempfile.TemporaryFile()  # noqa: SIM115 - read back after the process exits
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    CPU_SECONDS.append(usage.ru_utime + usage.ru_stime)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if stdin_path:
        stdin.close()  # type: ignore[union-attr]
    out.seek(0)
    text = out.read().decode()
    if proc.returncode not in (0,):
        raise SystemExit(f"{cmd[:3]} exited {proc.returncode}: {err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def prepare(rows: int) -> dict[str, Path]:
    """The JSONL (and CSV, SQLite) inputs, generated once per row count."""
    from generate import product_rows

    WORK.mkdir(parents=True, exist_ok=True)
    paths = {"jsonl": WORK / f"products-{rows}.jsonl", "csv": WORK / f"prices-{rows}.csv",
             "sqlite": WORK / f"products-{rows}.db", "resp": WORK / f"products-{rows}.resp"}
    if not all(p.exists() for p in paths.values()):
        print(f"generating {rows:,} product rows in {WORK} …", file=sys.stderr)
        rng = random.Random(7)
        db_tmp = paths["sqlite"].with_suffix(".tmp")
        db_tmp.unlink(missing_ok=True)
        db = sqlite3.connect(db_tmp)
        db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT, name TEXT, brand TEXT,"
                   " category TEXT, description TEXT, rating REAL, price_cents INTEGER)")
        with paths["jsonl"].open("w") as jf, paths["csv"].open("w", newline="") as cf, \
                paths["resp"].open("wb") as rf:
            writer = csv.writer(cf, lineterminator="\n")
            writer.writerow(["sku", "amount_cents", "currency"])
            batch = []
            for row in product_rows(rows):
                line = json.dumps(row, separators=(",", ":"), ensure_ascii=False)
                jf.write(line + "\n")
                writer.writerow([row["sku"], row["price_cents"], "EUR"])
                key = f"bench:product:{row['id']}".encode()
                value = line.encode()
                ttl = b"%d" % round(TTL_MS * (1 + rng.uniform(-JITTER, JITTER)))
                rf.write(b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n"
                         % (len(key), key, len(value), value, len(ttl), ttl))
                batch.append((row["id"], row["sku"], row["name"], row["brand"], row["category"],
                              row["description"], row["rating"], row["price_cents"]))
                if len(batch) >= 10_000:
                    db.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?,?)", batch)
                    batch = []
            db.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?,?)", batch)
        db.commit()
        db.close()
        db_tmp.rename(paths["sqlite"])
    return paths


# the least a Python client that reads JSONL rows must do per row: read lines, parse each with
# orjson (to find the key and refuse a broken row), encode it again, write SET key value PX ttl
# (TTLs drawn in C, as cachectl does), read the +OK replies. No checks, no counts, no duplicate
# detection, no float-spelling check, no start-up beyond orjson: what is left when the bookkeeping
# is gone, so cachectl's cost above it is its bookkeeping and the rest is the language.
PYTHON_FLOOR = """
import socket, sys, orjson, random
from array import array
from itertools import chain, repeat
from operator import add, mul, rshift
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
head = b"*5\\r\\n$3\\r\\nSET\\r\\n$%d\\r\\n%b\\r\\n$%d\\r\\n%b\\r\\n$2\\r\\nPX\\r\\n$7\\r\\n%d\\r\\n"
loads, dumps, rng, formats = orjson.loads, orjson.dumps, random.Random(7), {}
low, width = 3240000, 720001
sent = acked = 0
with open(sys.argv[2], "rb") as fh:
    while lines := fh.readlines(1 << 20):
        for i in range(0, len(lines), 64):
            rows = list(map(loads, lines[i:i + 64]))
            datas = list(map(dumps, rows))
            keys = [b"bench:product:%d" % r["id"] for r in rows]
            n = len(keys)
            ttls = map(add, repeat(low), map(rshift, map(mul, array("I", rng.randbytes(4 * n)),
                                                          repeat(width)), repeat(32)))
            fmt = formats.get(n) or formats.setdefault(n, head * n)
            s.sendall(fmt % tuple(chain.from_iterable(zip(map(len, keys), keys, map(len, datas),
                                                          datas, ttls))))
            sent += n
            while sent - acked > 8000:
                acked += s.recv(1 << 18).count(b"+OK")
while acked < sent:
    acked += s.recv(1 << 18).count(b"+OK")
"""


REDIS_PY_LOOP = """
import json, random, sys, redis
r = redis.Redis(port=int(sys.argv[1]))
rng = random.Random(7)
pipe = r.pipeline(transaction=False)
n = 0
with open(sys.argv[2], "rb") as fh:
    for line in fh:
        row = json.loads(line)
        value = json.dumps(row, separators=(",", ":"), ensure_ascii=False)
        pipe.set(f"bench:product:{row['id']}", value,
                 px=round(3600000 * (1 + rng.uniform(-0.1, 0.1))))
        n += 1
        if n % 1000 == 0:
            pipe.execute()
pipe.execute()
"""


def cachectl_warm(port: int, policy: Path, namespace: str,
                  env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(wall s, peak RSS MiB, the command's own seconds) for one namespace."""
    seconds, rss, out = run_measured(
        [*CACHECTL, "warm", "-p", str(policy), "-n", namespace, "--json",
         "--url", f"redis://127.0.0.1:{port}/0"], env=env)
    report = json.loads(out)
    assert report["rejected"] == 0 and report["failed"] == 0, report
    return seconds, rss, float(report["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-sources", action="store_true", help="JSONL only")
    parser.add_argument("--repeat", type=int, default=3, metavar="N",
                        help="rounds, every contender once per round (interleaved); each "
                        "contender's best wall time is compared [default: 3]")
    args = parser.parse_args()
    rows = args.rows
    rounds = max(1, args.repeat)
    # cachectl from bytecode, as installed (see benchmarks/bench_inspect.py)
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "cachectl")], check=True,
                   stdout=subprocess.DEVNULL)
    paths = prepare(rows)
    policy = WORK / f"bench-{rows}.yaml"
    policy.write_text(POLICY.format(jsonl=paths["jsonl"], csv=paths["csv"],
                                    sqlite=paths["sqlite"]))
    size_mb = paths["jsonl"].stat().st_size / 1e6
    print(f"{rows:,} product rows, {size_mb:,.0f} MB of JSONL; "
          f"{os.cpu_count()} CPUs; each contender on a fresh redis-server; best of "
          f"{rounds} interleaved round{'s' if rounds > 1 else ''} (noise on a shared machine "
          "only ever adds time)\n")

    runs: dict[str, list[tuple[float, float, float]]] = {}  # (wall s, peak RSS MiB, CPU s)
    own: dict[str, list[float]] = {}

    def record(name: str, measure: Callable[[int], tuple[float, float]]) -> None:
        with fresh_server() as port:
            seconds, rss = measure(port)
            keys = dbsize(port)
        assert keys == rows, f"{name}: {keys} keys, expected {rows}"
        runs.setdefault(name, []).append((seconds, rss, CPU_SECONDS[-1]))
        if rounds > 1:
            print(f"    round {len(runs[name])}: {name:<32} {seconds:7.2f} s  "
                  f"client CPU {CPU_SECONDS[-1]:5.1f} s", flush=True)

    def warm(namespace: str, env: dict[str, str] | None = None,
             label: str | None = None) -> Callable[[int], tuple[float, float]]:
        def measure(port: int) -> tuple[float, float]:
            wall, rss, inner = cachectl_warm(port, policy, namespace, env)
            own.setdefault(label or namespace, []).append(inner)
            return wall, rss
        return measure

    contenders: list[tuple[str, Callable[[int], tuple[float, float]]]] = [
        ("redis-cli --pipe (pre-encoded)",
         lambda port: run_measured(["redis-cli", "-p", str(port), "--pipe"],
                                   stdin_path=paths["resp"])[:2]),
        ("cachectl warm (jsonl)", warm("product")),
        # hiredis is optional (the fast extra): the same run with cachectl.resp's Python reader
        ("cachectl warm (jsonl, no hiredis)",
         warm("product", env_without_hiredis(WORK / "no-hiredis"), "product, no hiredis")),
        ("redis-py pipeline loop",
         lambda port: run_measured([PY, "-c", REDIS_PY_LOOP, str(port),
                                    str(paths["jsonl"])])[:2]),
        ("python floor (parse, encode, send)",
         lambda port: run_measured([PY, "-c", PYTHON_FLOOR, str(port), str(paths["jsonl"])])[:2]),
        # the same rows compressed (docs/compression.md): the codec's cost on the warm
        ("cachectl warm (jsonl, zstd)", warm("product_zstd")),
        ("cachectl warm (jsonl, lz4)", warm("product_lz4")),
    ]
    if not args.skip_sources:
        contenders += [("cachectl warm (csv)", warm("price")),
                       ("cachectl warm (sqlite)", warm("product_db"))]
    for _ in range(rounds):
        for name, measure in contenders:
            record(name, measure)
    if rounds > 1:
        print()

    results: dict[str, tuple[float, float]] = {}
    cpu: dict[str, float] = {}
    for name, _ in contenders:
        seconds, _, cpu[name] = min(runs[name])  # the best round, and its CPU
        rss = max(r[1] for r in runs[name])  # the peak over every round
        results[name] = (seconds, rss)
        print(f"  {name:<34} {seconds:7.2f} s  {rows / seconds:>10,.0f} keys/s  "
              f"peak RSS {rss:6.0f} MiB  client CPU {cpu[name]:6.1f} s")

    pipe_s = results["redis-cli --pipe (pre-encoded)"][0]
    warm_s, warm_rss = results["cachectl warm (jsonl)"]
    loop_s = results["redis-py pipeline loop"][0]
    print()
    floor_s = results["python floor (parse, encode, send)"][0]
    print(f"cachectl warm / redis-cli --pipe : {pipe_s / warm_s:.2f}x throughput (target >= 0.85x)")
    print(f"python floor / redis-cli --pipe  : {pipe_s / floor_s:.2f}x throughput (the least a "
          "Python reader of JSON rows does)")
    print(f"cachectl warm / python floor     : {floor_s / warm_s:.2f}x throughput")
    print(f"cachectl warm / redis-py loop    : {loop_s / warm_s:.2f}x throughput (target >= 4x)")
    print(f"cachectl warm peak RSS           : {warm_rss:.0f} MiB (target < 200 MiB)")
    for codec in ("zstd", "lz4"):
        print(f"cachectl warm {codec} / plain     : "
              f"{warm_s / results[f'cachectl warm (jsonl, {codec})'][0]:.2f}x throughput")
    bare_s = results["cachectl warm (jsonl, no hiredis)"][0]
    print(f"cachectl warm without / with hiredis: {warm_s / bare_s:.2f}x throughput")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(the contenders share the machine with redis-server and anything else running)")
    print("client CPU per key: " + ", ".join(
        f"{name.split(' (')[0] if 'jsonl' in name else name} {cpu[name] / rows * 1e6:.1f} us"
        for name in ("redis-cli --pipe (pre-encoded)", "cachectl warm (jsonl)",
                     "python floor (parse, encode, send)", "redis-py pipeline loop")))
    print("cachectl's own timing (no start-up): " + ", ".join(
        f"{ns} {rows / min(s):,.0f} keys/s" for ns, s in own.items()))
    for name in ("cachectl warm (csv)", "cachectl warm (sqlite)"):
        if name in results:
            s, rss = results[name]
            print(f"{name:<33}: {pipe_s / s:.2f}x redis-cli --pipe, {loop_s / s:.2f}x redis-py "
                  f"loop, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
