"""Warm namespaces from seed sources (``cachectl warm``).

    warm_namespaces(client, policy, ...) -> WarmReport      the one entry point
    open_targets(policy, ...)                                 open the sources only
    sources.open_source / sources.source_factory             readers, and plugins from
                                                              the ``cachectl.sources`` group
"""

from cachectl.warm.core import WarmProgress, WarmTarget, encode_value, open_targets, warm_namespaces
from cachectl.warm.model import NamespaceWarm, RowProblem, WarmReport
from cachectl.warm.sources import BadRow, ReadInterrupted, Source, SourceContext

__all__ = [
    "BadRow",
    "NamespaceWarm",
    "ReadInterrupted",
    "RowProblem",
    "Source",
    "SourceContext",
    "WarmProgress",
    "WarmReport",
    "WarmTarget",
    "encode_value",
    "open_targets",
    "warm_namespaces",
]
