"""The keyspace: which namespace a key belongs to, streaming SCAN, and batched per-key facts.

Keys are bytes end to end (they may hold any bytes, including non-UTF-8). A key is
attributed to exactly one namespace: the first, in policy order, whose exact
matcher accepts it; SCAN's MATCH glob only narrows the search.

Two ways to learn about many keys:

- ``key_facts`` / ``scan_facts``: every fact of every key (type, PTTL, memory,
  encoding, idle time), one pipelined round trip per batch. For listings.
- ``survey_keyspace``: the whole keyspace aggregated per namespace. One EVAL per
  batch runs SCAN, MEMORY USAGE and PTTL on the server and returns only totals
  (counts, bytes, TTL histogram, findings with a few example keys), so memory stays
  flat and nothing per key crosses the network. The batch size adapts so each call
  stays within a few milliseconds of server time. When scripting is refused (an ACL
  without ``+eval``) the same figures are computed from pipelined commands.

Nothing here uses KEYS, DEBUG or CONFIG; nothing touches a key's LRU clock except
STRLEN on the rare string that is over its namespace's ``max_value_bytes``.
"""

from cachectl.keyspace.matcher import NamespaceMatcher, key_shape, lua_pattern
from cachectl.keyspace.results import (
    UNMATCHED,
    BigKey,
    KeyspaceSurvey,
    NamespaceTally,
    NodeFigures,
    NodeTally,
    ShapeTally,
    collapse_shapes,
)
from cachectl.keyspace.scan import (
    DEFAULT_SCAN_COUNT,
    KeyFacts,
    key_facts,
    scan_facts,
    scan_keys,
    scan_namespace,
)
from cachectl.keyspace.survey import SAMPLE_RUN, SHARE_FACTOR, survey_keyspace
from cachectl.keyspace.survey_lua import HIST_BASE, SURVEY_LUA, survey_args

__all__ = [
    "DEFAULT_SCAN_COUNT", "HIST_BASE", "SAMPLE_RUN", "SHARE_FACTOR", "SURVEY_LUA", "UNMATCHED",
    "BigKey", "KeyFacts", "KeyspaceSurvey", "NamespaceMatcher", "NamespaceTally", "NodeFigures", "NodeTally",
    "ShapeTally", "collapse_shapes", "key_facts", "key_shape", "lua_pattern",
    "scan_facts", "scan_keys", "scan_namespace", "survey_args", "survey_keyspace",
]
