"""Scaling metrics as CloudWatch Embedded Metric Format lines."""

from __future__ import annotations

import io
import json

from shared.cloudwatch import CloudWatchReporter, emf_line


def test_an_emf_line_declares_each_value_as_a_metric_of_the_service() -> None:
    doc = json.loads(
        emf_line("streamscribe", "transcriber", {"UtteranceBacklog": 3}, timestamp=1700000000.5)
    )
    assert doc["_aws"]["Timestamp"] == 1700000000500
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "streamscribe",
        "Dimensions": [["Service"]],
        "Metrics": [{"Name": "UtteranceBacklog", "Unit": "Count"}],
    }
    assert doc["Service"] == "transcriber" and doc["UtteranceBacklog"] == 3.0


def test_the_reporter_writes_at_most_once_per_interval() -> None:
    out = io.StringIO()
    calls = []

    def measure() -> dict[str, float]:
        calls.append(1)
        return {"Sessions": 2}

    reporter = CloudWatchReporter("ns", "ingest", measure, every_s=3600, out=out)
    reporter.report_if_due()
    reporter.report_if_due()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and len(calls) == 1
    assert json.loads(lines[0])["Sessions"] == 2.0
