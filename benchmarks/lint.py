"""Time `cachectl lint` as whole processes, against yamllint on the same file.

Generates a 500-namespace policy (with templates that share prefixes, so the overlap
check works for its living) under benchmarks/.work/, then runs, interleaved so each
case sees the same load on a shared machine:

  floor      python -c pass                   (the interpreter alone)
  parse      python -c "yaml.safe_load(...)"  (a naive peer: parse, no checks)
  libs       typer + a pydantic TypeAdapter   (what any typer 0.29 command pays to parse flags)
  yamllint   yamllint policies/ecommerce.yaml (the peer: a YAML linter, also a Python CLI)
  lint       cachectl lint policies/ecommerce.yaml
  lint-500   cachectl lint <generated 500-namespace policy>

and prints the min and median CPU time (user + system of the child) of each, and each
as a multiple of yamllint's. Both run from cached bytecode (one warm-up run each).
Target: `cachectl lint policies/ecommerce.yaml` at most 2x yamllint's CPU time.
yamllint comes with the test extra (`pip install -e '.[test]'`).

    .venv/bin/python benchmarks/lint.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / ".work"
BIN = Path(sys.executable).parent
TARGET_RATIO = 2.0


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


def timed(cases: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """CPU seconds (user + system) of each run of each case, the cases taken in turn."""
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, argv in cases.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.run(argv, cwd=REPO, capture_output=True, check=False)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if proc.returncode not in (0, 1):  # yamllint finds style problems: exit 1
                raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    big = generate(WORK / "lint-500.yaml")
    python = str(BIN / "python")
    yamllint = BIN / "yamllint"
    if not yamllint.exists():
        raise SystemExit("yamllint is the peer: pip install -e '.[test]' (or pip install yamllint)")
    peer = "yamllint policies/ecommerce.yaml"
    lint = "cachectl lint policies/ecommerce.yaml"
    cases = {
        "floor: python -c pass": [python, "-c", "pass"],
        "yaml.safe_load only": [python, "-c", "import yaml,sys; yaml.safe_load(open(sys.argv[1]))",
                                "policies/ecommerce.yaml"],
        "typer + pydantic TypeAdapter": [python, "-c", "import os; os.environ['PYDANTIC_DISABLE_PLUGINS'] = "
                                         "'__all__'; import typer.main; from pydantic import "
                                         "TypeAdapter; TypeAdapter(int)"],
        peer: [str(yamllint), "policies/ecommerce.yaml"],
        lint: [str(BIN / "cachectl"), "lint", "policies/ecommerce.yaml"],
        "cachectl lint 500-namespace policy": [str(BIN / "cachectl"), "lint", str(big)],
    }
    # both from bytecode, as installed tools run: pip compiled yamllint's at install time, but an
    # editable checkout's is written on first import only, and never under PYTHONDONTWRITEBYTECODE
    # (then every run compiled cachectl's modules again: 25 ms of the 231 ms measured before)
    subprocess.run([python, "-m", "compileall", "-q", str(REPO / "cachectl")], check=True,
                   stdout=subprocess.DEVNULL)
    timed(cases, 1)  # warm the OS file cache
    cpus = timed(cases, args.runs)
    low = {name: min(values) for name, values in cpus.items()}
    mid = {name: statistics.median(values) for name, values in cpus.items()}
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; CPU time of the child, "
          f"{args.runs} interleaved runs each")
    print(f"{'':40} {'min':>8} {'median':>8} {'x peer (min/median)':>20}")
    for name in cases:
        print(f"{name:40} {low[name] * 1000:6.0f}ms {mid[name] * 1000:6.0f}ms "
              f"{low[name] / low[peer]:9.2f}x / {mid[name] / mid[peer]:.2f}x")
    ratio = max(low[lint] / low[peer], mid[lint] / mid[peer])
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER"
    print(f"target: {lint} <= {TARGET_RATIO:.1f}x {peer} -> {verdict} ({ratio:.2f}x, the worse of "
          f"min and median)")


if __name__ == "__main__":
    main()
