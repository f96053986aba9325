"""The rules every request follows, checked from the descriptor (services/common/validate.py)."""

from __future__ import annotations

import math

import pytest

from ftlab.v1 import events_pb2, job_service_pb2
from services.common import validate
from services.common.errors import InvalidArgument


def violations(message) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as info:
        validate.check(message)
    return {v.field: v.description for v in info.value.violations}


def test_every_level_of_a_message_is_checked_and_named():
    request = job_service_pb2.CreateJobRequest(display_name="ok")
    request.config.lora.target_modules.extend(["q_proj", "v\x00"])
    request.config.learning_rate = math.nan
    request.retry_policy.max_attempts_by_category["A\x00"] = 1
    request.watchdog.step_timeout_seconds = -math.inf
    found = violations(request)
    assert set(found) == {"config.lora.target_modules[1]", "config.learning_rate",
                          "retry_policy.max_attempts_by_category['A\\x00']", "watchdog.step_timeout_seconds"}
    assert "NUL" in found["config.lora.target_modules[1]"] and "finite" in found["config.learning_rate"]


def test_long_text_is_bounded_except_where_it_belongs():
    assert set(violations(job_service_pb2.GetJobRequest(name="x" * 5000))) == {"name"}
    validate.check(job_service_pb2.CreateJobRequest(config={"chat_template": "{{ x }}" * 10_000}))
    validate.check(job_service_pb2.CreateJobRequest(display_name="ü" * 4096))


def test_a_run_event_loses_its_nul_characters_before_it_is_stored():
    event = events_pb2.RunEvent(error=events_pb2.RunError(type="E", message="bad \x00 byte", log_tail="a\x00b"))
    validate.strip_nul(event)
    assert event.error.message == "bad  byte" and event.error.log_tail == "ab"
    validate.check(event)


def test_echoed_values_are_cut():
    assert len(validate.short("x" * 10_000)) < 120
    assert validate.short("jobs/abc") == "'jobs/abc'"
