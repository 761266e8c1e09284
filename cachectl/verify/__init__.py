"""cachectl verify: is the cache telling the truth? Live keys compared with their source.

``verify_namespaces`` samples (or takes every) live key of each namespace with a warm
source, finds its source row (``cachectl.verify.rows``: a lookup per key, or the source
read once), renders it as warm would and compares; ``fix_namespaces`` rewrites or removes
what differs; ``read_records`` gives the last result per namespace (for ``stats``).
"""

from cachectl.verify.core import (
    DEFAULT_SAMPLE,
    field_diff,
    fix_namespaces,
    read_records,
    record_key,
    verify_namespaces,
)
from cachectl.verify.model import (
    Difference,
    Estimate,
    FixResult,
    NamespaceVerify,
    Repair,
    VerifyReport,
)

__all__ = [
    "DEFAULT_SAMPLE",
    "Difference",
    "Estimate",
    "FixResult",
    "NamespaceVerify",
    "Repair",
    "VerifyReport",
    "field_diff",
    "fix_namespaces",
    "read_records",
    "record_key",
    "verify_namespaces",
]
