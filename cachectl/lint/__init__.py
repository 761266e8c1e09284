"""``cachectl lint``: the policy loader's diagnostics plus semantic rules, one module per family.

    document.py    CP011            the policy declares nothing
    ttl.py         CP104 CP107      stale and jitter in proportion to the ttl
    templates.py   CP204 CP205 CP208  glob characters, whitespace, overlapping namespaces
    thresholds.py  CP301-CP305      ratios in (0, 1], positive latencies, reachable levels
    urls.py        CP406 CP407      redis.url is a Redis URL without a literal password
    sources.py     CP005 CP402-CP404  warm sources: known type, existing file, rows fill the key
    compress.py    CP409            a compress codec whose package is not installed

The loader (cachectl.policy.loader) reports syntax, schema, units and template syntax.
"""

from cachectl.lint.report import LintReport
from cachectl.lint.runner import collect_files, lint_paths, lint_source

__all__ = ["LintReport", "collect_files", "lint_paths", "lint_source"]
