# ruff: noqa: E402  (benchmarks/ and the repository are put on sys.path before the imports)
"""Benchmark: inspect, stats, flush and warm on a 3-primary Redis Cluster against one standalone server.

The same keys (default 3,000,000; bench_inspect's namespaces: product, price, stock,
session, cart, reviews and 2 % unmatched, small values as in benchmarks/scale.py) are
loaded into a throwaway 3-primary cluster (tests/support/cluster.py, no replicas) and
into one throwaway redis-server, every server on a free port (never 6379), through
`redis-cli --pipe`: one per primary at once, fed the keys whose slots it owns, and one
for the standalone server. Then, each command as its own process (start-up included),
alternating standalone and cluster, with wall time and the process's peak RSS (wait4):

  inspect exact            cachectl inspect --json
  inspect --sample 20000   cachectl inspect --json --sample 20000
  stats                    cachectl stats --json --interval 1s (one interval, its sampled key scan)
  flush a tenth            cachectl flush -n cart --yes --json (cart holds 10 % of the keys)
  warm a tenth             cachectl warm -n cart --json (the flushed keys back, from JSONL)

and prints, per command, the wall time on each, the cluster/standalone ratio, the time the
command reports itself (inspect's survey, stats' key scan, flush's and warm's seconds) and,
on the cluster, each primary's own time where the command's JSON gives it (inspect's and
flush's `nodes`: `started_s`, `elapsed_s` / `seconds`). stats and warm report no per-node
time: stats' JSON is a versioned schema without one, and warm keeps the three primaries'
pipes filled from one thread, so each primary is busy from the first batch to the last.
The JSON counts are checked against what was loaded (every namespace, DBSIZE, the
per-primary split, the keys flushed and written back).

The machine the figures in docs/design.md come from has 2 cores for the 3 primaries, the
standalone server and cachectl: the ratios say how much of the primaries' work overlaps,
not what 3 machines would give.

    .venv/bin/python benchmarks/cluster.py [--keys 3000000] [--rounds 1] [--cachectl 'CMD …']
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent)]  # bench_inspect and scale, and tests.support

import argparse
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import redis
import scale
from bench_inspect import LAYOUT, PREFIX
from redis.crc import key_slot

from tests.support.cluster import RedisClusterFixture
from tests.support.redis_server import RedisServer

WORK = ROOT / ".work" / "cluster"
BIN = ROOT.parent / ".venv" / "bin"
CACHECTL = str(BIN / "cachectl") if (BIN / "cachectl").exists() else "cachectl"
CHUNK = 20_000  # commands per write into a redis-cli --pipe
AUDIT_KEY = f"{PREFIX}:cachectl:audit"


def keys_and_commands(total: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, SET … PX as RESP) for every key: scale.commands' keyspace, key by key."""
    for name, n in scale.counts(total).items():
        if name == "(unmatched)":
            head, ttl_s = b"legacy:", 0
        else:
            _, template, _, ttl_s = LAYOUT[name]
            head = f"{PREFIX}:{template.split('{')[0]}".encode()
        for i in range(n):
            key = head + b"%d" % i
            value = b"v" * (16 + i % 65)
            if ttl_s:
                px = b"%d" % (ttl_s * 1000 - i % 1000)
                yield key, (b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n"
                            % (len(key), key, len(value), value, len(px), px))
            else:
                yield key, (b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
                            % (len(key), key, len(value), value))


def slot_owners(cluster: RedisClusterFixture) -> tuple[list[int], list[int]]:
    """(the primaries' ports, the index in it of each slot's owner), from CLUSTER SLOTS."""
    slots = cluster.live_nodes()[0].client().execute_command(  # type: ignore[no-untyped-call]
        "CLUSTER", "SLOTS")
    ports = sorted({int(primary[1]) for _, _, primary, *_ in slots})
    owner = [0] * 16384
    for first, last, primary, *_ in slots:
        owner[first:last + 1] = [ports.index(int(primary[1]))] * (last - first + 1)
    return ports, owner


def load_cluster(cluster: RedisClusterFixture, total: int) -> tuple[float, dict[int, int]]:
    """Every key into the primary owning its slot, one redis-cli --pipe per primary at once;
    (seconds, keys sent to each port)."""
    ports, owner = slot_owners(cluster)
    start = time.perf_counter()
    procs = [subprocess.Popen(["redis-cli", "-p", str(port), "--pipe"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL) for port in ports]
    chunks: list[list[bytes]] = [[] for _ in ports]
    sent = [0] * len(ports)
    try:
        for key, command in keys_and_commands(total):
            i = owner[key_slot(key)]
            chunks[i].append(command)
            sent[i] += 1
            if len(chunks[i]) == CHUNK:
                stdin = procs[i].stdin
                assert stdin is not None
                stdin.write(b"".join(chunks[i]))
                chunks[i] = []
        for proc, chunk in zip(procs, chunks, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(b"".join(chunk))
            proc.stdin.close()
    finally:
        codes = [proc.wait() for proc in procs]
    if any(codes):
        raise SystemExit("redis-cli --pipe failed while loading the cluster")
    return time.perf_counter() - start, dict(zip(ports, sent, strict=True))


def measured(cmd: list[str]) -> tuple[float, float, dict[str, Any]]:
    """Run ``cmd``; (seconds, peak RSS MiB of that process, its JSON). Exit 1 (findings) is fine."""
    out_path = WORK / "stdout.tmp"
    start = time.perf_counter()
    with out_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:4])} exited {code}: {err.decode(errors='replace')[-800:]}")
    doc: dict[str, Any] = json.loads(out_path.read_text())
    return seconds, usage.ru_maxrss / 1024, doc


COMMANDS: list[tuple[str, list[str]]] = [
    ("inspect exact", ["inspect"]),
    ("inspect --sample 20000", ["inspect", "--sample", "20000"]),
    ("stats", ["stats", "--interval", "1s"]),
    ("flush a tenth", ["flush", "-n", "cart", "--yes"]),
    ("warm a tenth", ["warm", "-n", "cart"]),
]


def own_seconds(name: str, doc: dict[str, Any]) -> float | None:
    """The time the command reports itself (its work, without start-up)."""
    if name.startswith("inspect"):
        return float(doc["elapsed_s"])
    if name == "stats":
        return float(doc["scan"]["duration_ms"]) / 1000
    value = doc.get("seconds")
    return None if value is None else float(value)


def per_primary(doc: dict[str, Any]) -> list[tuple[str, float, float]] | None:
    """(node, started, seconds) per primary from the command's JSON, None if it has none."""
    nodes = doc.get("nodes")
    if not isinstance(nodes, list) or not nodes or "started_s" not in nodes[0]:
        return None
    return [(n["node"], float(n["started_s"]), float(n.get("elapsed_s", n.get("seconds", 0.0))))
            for n in nodes]


def audit_keys(ports: list[int]) -> dict[str, int]:
    """cachectl's own key the run adds (flush's audit stream): 1 on the primary holding it."""
    holder = ports[0]
    if len(ports) > 1:  # the primary that owns the key's slot
        slot = key_slot(AUDIT_KEY.encode())
        for first, last, primary, *_ in redis.Redis(port=ports[0]).execute_command(  # type: ignore[no-untyped-call]
                "CLUSTER", "SLOTS"):
            if first <= slot <= last:
                holder = int(primary[1])
    found = {f"127.0.0.1:{p}": 0 for p in ports}
    found[f"127.0.0.1:{holder}"] = int(redis.Redis(port=holder).exists(AUDIT_KEY))
    return found


def checks(name: str, doc: dict[str, Any], expect: dict[str, int], loaded: dict[str, int],
           own: dict[str, int]) -> list[str]:
    """What in ``doc`` disagrees with what was loaded (``loaded``: keys sent to each server;
    ``own``: cachectl's own keys on each, its flush audit stream); empty: all as loaded."""
    bad = []
    total = sum(loaded.values()) + sum(own.values())
    split = {node: n + own[node] for node, n in loaded.items()}
    cart = expect["cart"]
    if name == "inspect exact":
        found = {n["namespace"]: n["keys"] for n in doc["namespaces"]}
        wrong = {n: (found.get(n), k) for n, k in expect.items()
                 if n != "(unmatched)" and found.get(n) != k}
        unmatched = sum(p["keys"] for p in doc["unmatched"])
        if wrong:
            bad.append(f"namespaces (found, loaded): {wrong}")
        if unmatched != expect["(unmatched)"]:
            bad.append(f"unmatched {unmatched} != {expect['(unmatched)']}")
    if name.startswith("inspect"):
        if doc["total_keys"] != total:
            bad.append(f"total_keys {doc['total_keys']} != {total}")
        if doc["mode"] != "sample":
            got = {n["node"]: n["keys"] for n in doc["nodes"]}
            if got != split:
                bad.append(f"per primary {got} != loaded {split}")
    if name == "inspect --sample 20000":
        for row in doc["namespaces"]:
            truth = expect[row["namespace"]]
            if abs(row["keys"] - truth) > max(3 * row["keys_margin"], 0.02 * truth):
                bad.append(f"{row['namespace']} estimated {row['keys']} ± {row['keys_margin']}, "
                           f"loaded {truth}")
    if name == "stats":
        if doc["server"]["total"]["keys"] != total:
            bad.append(f"server keys {doc['server']['total']['keys']} != {total}")
        if doc["scan"]["total_keys"] != total:
            bad.append(f"scan total_keys {doc['scan']['total_keys']} != {total}")
    if name == "flush a tenth" and doc.get("removed") != cart:
        bad.append(f"removed {doc.get('removed')} != {cart}")
    if name == "warm a tenth" and doc.get("written") != cart:
        bad.append(f"written {doc.get('written')} != {cart}")
    return bad


def run(total: int, cachectl: list[str], rounds: int) -> int:
    expect = scale.counts(total)
    jsonl, _resp = scale.cart_inputs(expect["cart"])
    WORK.mkdir(parents=True, exist_ok=True)
    policy = WORK / "policy.yaml"
    policy.write_text(scale.policy_yaml(jsonl))
    # time cachectl as installed (bytecode written), not the first import of the checkout
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT.parent / "cachectl")],
                   check=True, stdout=subprocess.DEVNULL)
    for old in ("cluster", "standalone"):  # a cluster node refuses a nodes.conf of last run
        shutil.rmtree(WORK / old, ignore_errors=True)
    cluster = RedisClusterFixture(WORK / "cluster", primaries=3, replicas_per_primary=0)
    standalone = RedisServer(WORK / "standalone")
    failures = 0
    try:
        cluster.start()
        standalone.start()
        cluster_s, sent = load_cluster(cluster, total)
        loaded = {"cluster": {f"127.0.0.1:{port}": n for port, n in sent.items()},
                  "standalone": {f"127.0.0.1:{standalone.port}": total}}
        ports = {"cluster": list(sent), "standalone": [standalone.port]}
        standalone_s = scale.load(standalone.port, total)
        sizes = [int(redis.Redis(port=p).dbsize()) for p in sent]
        if sizes != list(sent.values()) or int(standalone.client().dbsize()) != total:
            raise SystemExit(f"loading went wrong: DBSIZE {sizes} (sent {list(sent.values())}), "
                             f"standalone {standalone.client().dbsize()} of {total}")
        print(f"{total:,} keys: standalone loaded in {standalone_s:.1f} s (redis-cli --pipe); "
              f"cluster of 3 primaries ({', '.join(f'{n:,}' for n in sent.values())} keys) in "
              f"{cluster_s:.1f} s (one redis-cli --pipe per primary at once); "
              f"{os.cpu_count()} CPUs", flush=True)
        urls = {"standalone": standalone.url, "cluster": cluster.url}
        # the machine is shared: with --rounds N every command runs N times on each (in the
        # same order, so flush and warm always find the keys they expect), and the fastest
        # run of each, with its JSON, is reported
        best: dict[str, dict[str, tuple[float, float, dict[str, Any]]]] = {}
        for round_no in range(1, rounds + 1):
            if rounds > 1:
                print(f" round {round_no} of {rounds}", flush=True)
            for name, args in COMMANDS:
                results = best.setdefault(name, {})
                line = f"  {name:24}"
                for where in ("standalone", "cluster"):
                    extra = ["--cluster"] if where == "cluster" else []
                    cmd = [*cachectl, *args, "-p", str(policy), "--url", urls[where], *extra,
                           "--json"]
                    got = measured(cmd)
                    bad = checks(name, got[2], expect, loaded[where], audit_keys(ports[where]))
                    if bad:
                        failures += 1
                        print(f"  {name} on {where}: counts WRONG: {'; '.join(bad)}", flush=True)
                    if where not in results or got[0] < results[where][0]:
                        results[where] = got
                    line += f" {where} {got[0]:7.2f} s {got[1]:5.0f} MiB  "
                print(line.rstrip(), flush=True)
        rows = [(name, best[name]) for name, _ in COMMANDS]
        report(rows)
        print(f"\ncounts: {'all as loaded' if not failures else f'{failures} WRONG (see above)'}; "
              f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        standalone.stop()
        cluster.stop()
    return 1 if failures else 0


def report(rows: list[tuple[str, dict[str, tuple[float, float, dict[str, Any]]]]]) -> None:
    own_time = "the command's own time"
    print(f"\n{'':24} {'wall time (start-up included)':^32}  {own_time:^28}".rstrip())
    print(f"{'command':24} {'standalone':>10} {'cluster':>9} {'ratio':>7}   {'standalone':>10} "
          f"{'cluster':>9} {'ratio':>7}   cluster per primary: start + seconds")
    for name, results in rows:
        (s_wall, _, s_doc), (c_wall, _, c_doc) = results["standalone"], results["cluster"]
        s_own, c_own = own_seconds(name, s_doc), own_seconds(name, c_doc)
        own = (f"{s_own:9.2f}s {c_own:8.2f}s {c_own / s_own:6.2f}x" if s_own and c_own is not None
               else f"{'-':>10} {'-':>9} {'-':>7}")
        nodes = per_primary(c_doc)
        if nodes is None:
            spread = ("not reported (one thread fills the 3 pipes)" if name.startswith("warm")
                      else "not reported (schema_version 1 has no per-node time)"
                      if name == "stats" else "not reported")
        else:
            spread = " | ".join(f"{at:.2f}+{took:.2f}s" for _, at, took in nodes)
            longest = max(took for _, _, took in nodes)
            spread += f"  (sum {sum(t for _, _, t in nodes):.2f}s, longest {longest:.2f}s)"
        print(f"{name:24} {s_wall:9.2f}s {c_wall:8.2f}s {c_wall / s_wall:6.2f}x   {own}   {spread}")
    stats = dict(rows).get("stats")
    if stats is not None:
        read = [stats[w][2]["scan"]["scanned_keys"] for w in ("standalone", "cluster")]
        print(f"(stats samples each primary: its key scan read {read[0]:,} keys on the standalone "
              f"server, {read[1]:,} on the cluster)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=3_000_000, help="keys loaded in each")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every command this many times on each; the fastest counts")
    parser.add_argument("--cachectl", default=CACHECTL,
                        help="the command to time (default: this checkout's; e.g. "
                        "'python run_other_build.py' to compare another build)")
    args = parser.parse_args()
    ok, why = scale.fits(args.keys * 2)  # the cluster and the standalone server both hold them
    if not ok:
        print(f"{args.keys:,} keys twice do not fit: {why}")
        return 2
    return run(args.keys, shlex.split(args.cachectl), max(1, args.rounds))


if __name__ == "__main__":
    raise SystemExit(main())
