"""Plan a policy change against the live cache, and apply it safely.

``diff_policies(old, new)`` says, per namespace, what the change does: added,
removed, renamed (same template, new name), re-keyed (template, version or key
prefix changed: every existing key becomes an orphan), timing changed (and whether
keys alive now may carry a TTL above the new maximum), thresholds changed.
``measure_plan`` adds the live figures (keys and bytes per namespace, keys whose TTL
is above the new maximum; exact or sampled with 95 % margins) from one keyspace
survey. ``apply_plan`` does only what the plan says: shortens TTLs above the new
maximum (PEXPIRE … LT, never lengthening) and removes the keys of removed and
re-keyed namespaces with the flush machinery (exact matcher, paced by the server's
latency, cluster-wide, audited). Rerunning it finishes an interrupted run; a second
run finds nothing to do.
"""

from cachectl.plan.apply import (
    ApplyResult,
    StalePlanError,
    apply_plan,
    check_plan_current,
    keys_to_clamp,
    keys_to_remove,
)
from cachectl.plan.diff import diff_policies, policy_fingerprint, read_policy_at
from cachectl.plan.measure import apply_sample, measure_plan, work_policy
from cachectl.plan.model import (
    Change,
    FieldChange,
    LiveFigures,
    NamespacePlan,
    PolicyPlan,
    Prediction,
    plan_from_json,
)

__all__ = [
    "ApplyResult",
    "Change",
    "FieldChange",
    "LiveFigures",
    "NamespacePlan",
    "PolicyPlan",
    "Prediction",
    "StalePlanError",
    "apply_plan",
    "apply_sample",
    "check_plan_current",
    "diff_policies",
    "keys_to_clamp",
    "keys_to_remove",
    "measure_plan",
    "plan_from_json",
    "policy_fingerprint",
    "read_policy_at",
    "work_policy",
]
