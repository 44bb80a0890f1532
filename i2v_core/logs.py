"""Keeps a job's id in Ray Serve's structured (JSON) log lines: Serve drops a record's `job_id`
attribute (it is Ray's own job id there), so ours travels in `ray_serve_extra_fields` instead."""

from __future__ import annotations

import logging

SERVE_LOGGER = "ray.serve"
_EXTRA_FIELDS = "ray_serve_extra_fields"  # Ray flattens this dict into the JSON line
_CARRIED = ("job_id",)


class JobFieldsFilter(logging.Filter):
    """Moves `extra={"job_id": ...}` into the fields Serve's formatter writes out as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        carried = {key: record.__dict__.pop(key) for key in _CARRIED if key in record.__dict__}
        if carried:
            fields = getattr(record, _EXTRA_FIELDS, None)
            merged = {**fields, **carried} if isinstance(fields, dict) else carried
            setattr(record, _EXTRA_FIELDS, merged)
        return True


def keep_job_ids(logger_name: str = SERVE_LOGGER) -> None:
    """Installs the filter on the logger the service logs on (once per process)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, JobFieldsFilter) for f in logger.filters):
        logger.addFilter(JobFieldsFilter())
