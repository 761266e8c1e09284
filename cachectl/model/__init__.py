"""What-if model of a policy's cache: hit rate, origin load and memory at each TTL and size.

``read_traces`` reads access traces (CSV, JSON lines, libCacheSim's oracleGeneral; .gz/.zst);
``model_trace`` turns one into per-namespace curves and recommendations (a ``ModelReport``).
The loops are compiled with numba (the ``model`` extra); see docs/model.md for the method.
"""

from cachectl.model.analyze import (
    DEFAULT_KEY_OVERHEAD,
    ModelOptions,
    choose_sample_rate,
    default_ttl_grid,
    keeps_key,
    memory_grid,
    model_trace,
    sample_mask,
)
from cachectl.model.results import (
    HotKey,
    MemoryEvaluation,
    MemoryPoint,
    ModelReport,
    NamespaceModel,
    Recommendation,
    TtlPoint,
)
from cachectl.model.trace import Trace, TraceError, key_hash, read_traces

__all__ = [
    "DEFAULT_KEY_OVERHEAD", "HotKey", "MemoryEvaluation", "MemoryPoint", "ModelOptions", "ModelReport",
    "NamespaceModel", "Recommendation", "Trace", "TraceError", "TtlPoint", "choose_sample_rate",
    "default_ttl_grid", "keeps_key", "key_hash", "memory_grid", "model_trace", "read_traces",
    "sample_mask",
]
