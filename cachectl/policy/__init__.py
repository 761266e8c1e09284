"""The policy: YAML -> validated model with source positions (see docs/design.md)."""

from cachectl.policy.loader import LoadResult, load_policy, parse_policy, read_policy
from cachectl.policy.model import Namespace, Policy, PolicySpec, Thresholds
from cachectl.policy.template import KeyParamError, KeyTemplate

__all__ = [
    "KeyParamError",
    "KeyTemplate",
    "LoadResult",
    "Namespace",
    "Policy",
    "PolicySpec",
    "Thresholds",
    "load_policy",
    "parse_policy",
    "read_policy",
]
