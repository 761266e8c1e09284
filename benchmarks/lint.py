"""Time `cachectl lint` as whole processes, against the interpreter's own start-up.

Generates a 500-namespace policy (with templates that share prefixes, so the overlap
check works for its living) under benchmarks/.work/, then runs, several times each:

  floor      python -c pass                   (the interpreter alone)
  parse      python -c "yaml.safe_load(...)"  (a naive peer: parse, no checks)
  lint       cachectl lint policies/ecommerce.yaml
  lint-500   cachectl lint <generated 500-namespace policy>

and prints the median wall and CPU time of each, and each as a multiple of the floor
(CPU time says more than wall time on a busy machine).
Target: `cachectl lint policies/ecommerce.yaml` under 0.4 s on a 2-core machine.

    .venv/bin/python benchmarks/lint.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / ".work"
BIN = Path(sys.executable).parent
TARGET_S = 0.4


def generate(path: Path, count: int = 500) -> Path:
    lines = ["version: 1", "redis: {url: '${REDIS_URL:-redis://localhost:6379/0}', key_prefix: bench}",
             "defaults: {ttl: 10m, jitter: 10%}", "namespaces:"]
    for i in range(count):
        family = f"family{i % 25}"
        lines += [
            f"  ns{i}:",
            f"    key: \"{family}:kind{i}:{{id}}:v{i % 3}\"",
            f"    ttl: {1 + i % 59}m",
            f"    stale: {i % 30}s",
            f"    tags: [{family}, t{i % 7}]",
        ]
        if i % 10 == 0:
            lines += ["    critical: true", "    max_value_bytes: 64KiB"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(argv: list[str], runs: int, ok_codes: tuple[int, ...] = (0,)) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run of ``argv`` as a whole process."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode not in ok_codes:
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    big = generate(WORK / "lint-500.yaml")
    python = str(BIN / "python")
    cachectl = str(BIN / "cachectl")
    cases = {
        "floor: python -c pass": [python, "-c", "pass"],
        "peer: yaml.safe_load only": [python, "-c", "import yaml,sys; yaml.safe_load(open(sys.argv[1]))",
                                      "policies/ecommerce.yaml"],
        "cachectl lint policies/ecommerce.yaml": [cachectl, "lint", "policies/ecommerce.yaml"],
        "cachectl lint 500-namespace policy": [cachectl, "lint", str(big)],
    }
    timed([cachectl, "lint", "policies/ecommerce.yaml"], 1)  # warm the OS file cache
    results = {name: timed(argv, args.runs) for name, argv in cases.items()}
    medians = {name: statistics.median(walls) for name, (walls, _) in results.items()}
    cpu = {name: statistics.median(cpus) for name, (_, cpus) in results.items()}
    floor = medians["floor: python -c pass"]
    cpu_floor = cpu["floor: python -c pass"]
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs ({args.runs} runs each)")
    print(f"{'':40} {'wall':>8} {'x floor':>8} {'cpu':>8} {'x floor':>8}")
    for name, median in medians.items():
        print(f"{name:40} {median * 1000:6.0f}ms {median / floor:7.1f}x "
              f"{cpu[name] * 1000:6.0f}ms {cpu[name] / max(cpu_floor, 1e-3):7.1f}x")
    ecommerce = medians["cachectl lint policies/ecommerce.yaml"]
    verdict = "OK" if ecommerce < TARGET_S else "OVER"
    print(f"target: ecommerce lint < {TARGET_S * 1000:.0f}ms wall -> {verdict} "
          f"({ecommerce * 1000:.0f}ms; lint work above start-up: "
          f"{(ecommerce - floor) * 1000:.0f}ms)")


if __name__ == "__main__":
    main()
