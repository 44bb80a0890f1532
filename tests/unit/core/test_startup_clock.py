"""A replica's constructor reports its parts once, in the field Serve's JSON log lines carry and
bench/time_to_ready.py reads."""

from __future__ import annotations

import logging
import time

import pytest

from i2v_core.startup import FIELD, StartupClock


def test_report_logs_each_part_and_the_total(caplog: pytest.LogCaptureFixture) -> None:
    clock = StartupClock()
    time.sleep(0.02)
    clock.lap("imports")
    clock.lap("load")
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        clock.report("Generator")
    [record] = caplog.records
    parts = record.ray_serve_extra_fields[FIELD]
    assert list(parts) == ["imports", "load", "total"]
    assert parts["imports"] >= 0.02
    assert parts["total"] >= parts["imports"] + parts["load"]
    assert record.getMessage().startswith("Generator constructed in ")
