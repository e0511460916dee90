"""Service counters of one gateway process, and their Prometheus text rendering.

Counters live in memory per process (with `--workers N`, each worker reports its own; Prometheus
sums them when it scrapes each worker or the sum over scrapes). No client library is needed for
a handful of counters and two histograms.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.writer import JournalWriter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Histogram:
    """A cumulative Prometheus histogram (seconds)."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total:.6f}")
        lines.append(f"{name}_count {self.count}")
        return lines


@dataclass
class Telemetry:
    """What the capture middleware counts; the writer keeps its own WriterStats."""

    chat_requests: Counter[str] = field(default_factory=Counter)
    not_stored: int = 0
    capture_errors: int = 0
    latency: Histogram = field(default_factory=Histogram)
    ttft: Histogram = field(default_factory=Histogram)

    def observe_chat(self, status: str, latency_s: float, ttft_ms: float | None) -> None:
        self.chat_requests[status] += 1
        self.latency.observe(latency_s)
        if ttft_ms is not None:
            self.ttft.observe(ttft_ms / 1000)


def _metric(name: str, kind: str, help_text: str, value: float) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]


def render_prometheus(telemetry: Telemetry, writer: JournalWriter | None) -> str:
    """All service metrics of this process in Prometheus text exposition format 0.0.4."""
    lines = [
        "# HELP interlog_chat_requests_total Chat completions answered, by logged status.",
        "# TYPE interlog_chat_requests_total counter",
    ]
    for status in ("ok", "error", "cancelled"):
        count = telemetry.chat_requests.get(status, 0)
        lines.append(f'interlog_chat_requests_total{{status="{status}"}} {count}')
    lines += telemetry.latency.render(
        "interlog_chat_latency_seconds", "Chat completion latency, request to last byte."
    )
    lines += telemetry.ttft.render(
        "interlog_chat_ttft_seconds", "Time to the first completion text (upstream latency)."
    )
    lines += _metric(
        "interlog_interactions_not_stored_total",
        "counter",
        "Chat completions answered with store=false (nothing persisted).",
        telemetry.not_stored,
    )
    lines += _metric(
        "interlog_capture_errors_total",
        "counter",
        "Interactions the capture middleware failed to journal.",
        telemetry.capture_errors,
    )
    if writer is not None:
        stats = writer.stats
        journal = writer.journal
        lines += _metric(
            "interlog_journal_depth",
            "gauge",
            "Interactions journaled, not yet stored.",
            journal.depth,
        )
        lines += _metric(
            "interlog_journal_lag_seconds",
            "gauge",
            "Age of the oldest interaction not yet stored.",
            round(journal.oldest_age, 3),
        )
        lines += _metric(
            "interlog_interactions_written_total",
            "counter",
            "Interactions the writer stored.",
            stats.written,
        )
        lines += _metric(
            "interlog_writer_retries_total",
            "counter",
            "Batches retried after the store failed (e.g. unreachable).",
            stats.retried,
        )
        lines += _metric(
            "interlog_interactions_failed_total",
            "counter",
            "Interactions the store refused for good (kept in rejected-*.jsonl).",
            stats.failed,
        )
    return "\n".join(lines) + "\n"
