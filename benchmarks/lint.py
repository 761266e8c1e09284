"""Time `cachectl lint` as whole processes, against the interpreter's own start-up.

Generates a 500-namespace policy (with templates that share prefixes, so the overlap
check works for its living) under benchmarks/.work/, then runs, several times each:

  floor      python -c pass                   (the interpreter alone)
  parse      python -c "yaml.safe_load(...)"  (a naive peer: parse, no checks)
  lint       cachectl lint policies/ecommerce.yaml
  lint-500   cachectl lint <generated 500-namespace policy>

and prints the median wall time of each, and each median as a multiple of the floor.
Target: `cachectl lint policies/ecommerce.yaml` under 0.4 s on a 2-core machine.

    .venv/bin/python benchmarks/lint.py [--runs 9]
"""

from __future__ import annotations

import argparse
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


def timed(argv: list[str], runs: int, ok_codes: tuple[int, ...] = (0,)) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, check=False)
        out.append(time.perf_counter() - start)
        if proc.returncode not in ok_codes:
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return out


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
    medians = {name: statistics.median(timed(argv, args.runs)) for name, argv in cases.items()}
    floor = medians["floor: python -c pass"]
    print(f"{'':40} {'median':>9} {'x floor':>8}   ({args.runs} runs each)")
    for name, median in medians.items():
        print(f"{name:40} {median * 1000:7.0f}ms {median / floor:7.1f}x")
    ecommerce = medians["cachectl lint policies/ecommerce.yaml"]
    verdict = "OK" if ecommerce < TARGET_S else "OVER"
    print(f"target: ecommerce lint < {TARGET_S * 1000:.0f}ms wall -> {verdict} "
          f"({ecommerce * 1000:.0f}ms; lint work above start-up: "
          f"{(ecommerce - floor) * 1000:.0f}ms)")


if __name__ == "__main__":
    main()
