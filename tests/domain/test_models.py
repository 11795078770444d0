"""JobSpec / LeaseGuarantee validation (the offending field is named) and PriorityClass."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gpulease.domain.errors import (
    Conflict,
    Denied,
    DomainError,
    InvalidRequest,
    InvalidTransition,
    NotFound,
)
from gpulease.domain.models import (
    JobSpec,
    LeaseGuarantee,
    PriorityClass,
    TopologyMode,
    TopologyRequest,
)


def spec(**overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {"id": "j", "tenant": "acme", "gpus": 8, "submit_time": 0.0}
    fields.update(overrides)
    return JobSpec(**fields)


def test_defaults() -> None:
    job = spec()
    assert job.gpus_per_node is None
    assert job.priority is PriorityClass.NORMAL
    assert job.walltime is None
    assert job.preemptible is True
    assert job.requeueable is True
    assert job.checkpoint_interval is None
    assert job.topology == TopologyRequest(TopologyMode.PREFERRED, None)
    assert job.purpose is None


def test_jobspec_is_frozen() -> None:
    job = spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.gpus = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    "fields",
    [
        {"gpus": 1},
        {"gpus": 8, "gpus_per_node": 8},
        {"gpus": 8, "gpus_per_node": 1},
        {"gpus": 16, "gpus_per_node": 4, "topology": TopologyRequest(segment=8)},
        {"gpus": 16, "topology": TopologyRequest(TopologyMode.REQUIRED, segment=16)},
        {"walltime": 0.5, "checkpoint_interval": 0.1},
    ],
)
def test_valid_specs(fields: dict[str, Any]) -> None:
    job = spec(**fields)
    for name, value in fields.items():
        assert getattr(job, name) == value


INVALID_JOBS = [
    ({"id": ""}, "id", "job id must not be empty"),
    ({"gpus": 0}, "gpus", "job j: gpus must be >= 1, got 0"),
    ({"gpus": -4}, "gpus", "job j: gpus must be >= 1, got -4"),
    (
        {"gpus_per_node": 0},
        "gpus_per_node",
        "job j: gpus (8) must be a multiple of gpus_per_node (0)",
    ),
    (
        {"gpus": 6, "gpus_per_node": 4},
        "gpus_per_node",
        "job j: gpus (6) must be a multiple of gpus_per_node (4)",
    ),
    (
        {"topology": TopologyRequest(segment=0)},
        "segment",
        "job j: gpus (8) must be a multiple of segment (0)",
    ),
    (
        {"topology": TopologyRequest(segment=3)},
        "segment",
        "job j: gpus (8) must be a multiple of segment (3)",
    ),
    (
        {"gpus": 16, "gpus_per_node": 8, "topology": TopologyRequest(segment=4)},
        "segment",
        "job j: segment (4) must be a multiple of gpus_per_node (8)",
    ),
    ({"walltime": 0.0}, "walltime", "job j: walltime must be > 0"),
    ({"walltime": -5.0}, "walltime", "job j: walltime must be > 0"),
    ({"checkpoint_interval": 0.0}, "checkpoint_interval", "job j: checkpoint_interval must be > 0"),
]


@pytest.mark.parametrize(("fields", "field", "message"), INVALID_JOBS)
def test_invalid_jobspec_names_the_field(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        spec(**fields)
    assert caught.value.code == "invalid_request"
    assert caught.value.details == {"field": field}
    assert caught.value.message == message
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"gpus": 0}, "gpus", "lease L1: gpus must be >= 1"),
        ({"end": 100.0}, "end", "lease L1: end must be after start"),
        ({"end": 50.0}, "end", "lease L1: end must be after start"),
    ],
)
def test_invalid_lease_names_the_field(fields: dict[str, Any], field: str, message: str) -> None:
    values: dict[str, Any] = {
        "lease_id": "L1",
        "tenant": "acme",
        "gpus": 72,
        "start": 100.0,
        "end": 200.0,
    }
    values.update(fields)
    with pytest.raises(InvalidRequest) as caught:
        LeaseGuarantee(**values)
    assert caught.value.details == {"field": field}
    assert caught.value.message == message


def test_lease_is_active_on_a_half_open_interval() -> None:
    lease = LeaseGuarantee("L1", "acme", 72, 100.0, 200.0)
    assert [lease.active_at(t) for t in (99.9, 100.0, 150.0, 199.9, 200.0)] == [
        False,
        True,
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("low", PriorityClass.LOW),
        ("NORMAL", PriorityClass.NORMAL),
        (" High ", PriorityClass.HIGH),
        ("critical", PriorityClass.CRITICAL),
    ],
)
def test_priority_parse(text: str, expected: PriorityClass) -> None:
    assert PriorityClass.parse(text) is expected


def test_priority_order() -> None:
    assert PriorityClass.LOW < PriorityClass.NORMAL < PriorityClass.HIGH < PriorityClass.CRITICAL


def test_priority_parse_unknown() -> None:
    with pytest.raises(InvalidRequest) as caught:
        PriorityClass.parse("urgent")
    assert caught.value.message == (
        "unknown priority class 'urgent'; use one of low, normal, high, critical"
    )
    assert caught.value.details == {"field": "priority"}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (DomainError, "error"),
        (InvalidRequest, "invalid_request"),
        (NotFound, "not_found"),
        (Conflict, "conflict"),
        (Denied, "denied"),
        (InvalidTransition, "invalid_transition"),
    ],
)
def test_error_codes_are_stable(error: type[DomainError], code: str) -> None:
    raised = error("what went wrong", field="x", value=3)
    assert raised.code == code
    assert raised.to_dict() == {
        "code": code,
        "message": "what went wrong",
        "details": {"field": "x", "value": 3},
    }
