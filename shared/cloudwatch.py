"""Metrics for CloudWatch as Embedded Metric Format lines on standard output.

On ECS the awslogs driver sends a container's output to CloudWatch Logs, which turns each
EMF line into metric data points: no agent, no PutMetricData permission. The scaling
policies in ``infra/`` track these metrics.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

REPORT_EVERY_S = 30.0


def emf_line(namespace: str, service: str, values: Mapping[str, float], *, timestamp: float) -> str:
    """One EMF document: every value a Count metric with the single dimension ``Service``."""
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(timestamp * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [["Service"]],
                        "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
                    }
                ],
            },
            "Service": service,
            **{name: float(value) for name, value in values.items()},
        },
        separators=(",", ":"),
    )


class CloudWatchReporter:
    """Writes ``measure()`` as an EMF line at most every ``every_s`` seconds when ``due``."""

    def __init__(
        self,
        namespace: str,
        service: str,
        measure: Callable[[], Mapping[str, float]],
        *,
        every_s: float = REPORT_EVERY_S,
        out: TextIO | None = None,
    ) -> None:
        self._namespace = namespace
        self._service = service
        self._measure = measure
        self._every_s = every_s
        self._out = out or sys.stdout
        self._last = float("-inf")

    def report_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last < self._every_s:
            return
        self._last = now
        line = emf_line(self._namespace, self._service, self._measure(), timestamp=time.time())
        print(line, file=self._out, flush=True)
