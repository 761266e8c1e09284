"""One scrape of ``cachectl stats --serve``: a report as Prometheus text, or ``cachectl_up 0``.

``Scraper.scrape()`` never raises: Redis errors become ``cachectl_up 0`` with a reason
from a bounded set (``SCRAPE_FAILURE_REASONS``) and one line for the log (passwords
scrubbed by ``connection.describe_error``); anything else is a bug, reported the same
way with the reason ``internal`` so the exporter keeps answering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis.exceptions as rex

from cachectl.connection import ConnectionSettings, describe_error
from cachectl.stats import StatsReport, StatsSampler

# the bounded set of `reason` label values on `cachectl_up 0`
SCRAPE_FAILURE_REASONS = ("timeout", "connection", "auth", "permission", "tls", "cluster",
                          "reply", "internal")


@dataclass(frozen=True)
class Scrape:
    """The body to serve, and a line for the log when the scrape failed."""

    body: bytes
    failure: str | None = None


def failure_reason(exc: BaseException) -> str:
    """The bounded ``reason`` label value for a redis-py (or socket) error."""
    text = str(exc)
    if isinstance(exc, rex.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, rex.NoPermissionError) or "NOPERM" in text:
        return "permission"
    if isinstance(exc, rex.AuthenticationError | rex.AuthenticationWrongNumberOfArgsError) or (
            "WRONGPASS" in text or "NOAUTH" in text):
        return "auth"
    if "SSL" in text or "TLS" in text or "certificate" in text:
        return "tls"
    if isinstance(exc, rex.RedisClusterException | rex.ClusterError | rex.MovedError
                  | rex.AskError) or "CLUSTERDOWN" in text:
        return "cluster"
    if isinstance(exc, rex.ConnectionError | OSError):
        return "connection"
    return "reply"


class Scraper:
    """Turns ``sampler.report()`` into scrape bodies; Redis down is ``cachectl_up 0``.

    ``render`` formats a report and ``unavailable`` the body for a failure reason (the
    renderers live above this layer, so they are handed in).
    """

    def __init__(self, sampler: StatsSampler, settings: ConnectionSettings,
                 render: Callable[[StatsReport], str], unavailable: Callable[[str], str]) -> None:
        self.sampler = sampler
        self.settings = settings
        self.render = render
        self.unavailable = unavailable

    def prime(self) -> str | None:
        """Take the first baseline; the failure line when Redis cannot be read yet."""
        try:
            self.sampler.prime()
        except (rex.RedisError, rex.RedisClusterException, OSError) as exc:
            return describe_error(exc, self.settings).message
        return None

    def scrape(self) -> Scrape:
        """One report as Prometheus text; never raises."""
        try:
            report = self.sampler.report()
            return Scrape(self.render(report).encode())
        except (rex.RedisError, rex.RedisClusterException, OSError) as exc:
            return Scrape(self.unavailable(failure_reason(exc)).encode(),
                          describe_error(exc, self.settings).message)
        except Exception as exc:  # noqa: BLE001 (an exporter keeps answering; the bug is logged)
            return Scrape(self.unavailable("internal").encode(),
                          f"scrape failed ({type(exc).__name__}: a bug in cachectl; "
                          "rerun with --debug and report it)")
