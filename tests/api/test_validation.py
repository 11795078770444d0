"""Validation at the edge: each finding of the security review is now a 422 naming the field
(or a 413 for a body over the cap), refused before any row is written.

Runs the real app in process over the demo, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpulease.api.app import create_app
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

Api = Callable[[str | None], TestClient]
JOB = {"gpus": 8, "purpose": "financial-services-ai", "command": "true"}  # bank's approved use


def _user(demo: list[DemoUser], email: str) -> DemoUser:
    return next(u for u in demo if u.email == email)


@pytest.fixture
def bank(api: Api, demo: list[DemoUser]) -> TestClient:
    return api(_user(demo, "admin@bank.example").token)


@pytest.fixture
def ops(api: Api, demo: list[DemoUser]) -> TestClient:
    return api(_user(demo, "ops@indosat.example").token)


def _raw(client: TestClient, path: str, text: str | bytes) -> Any:
    """POST a body exactly as written (json= refuses NaN and lone surrogates)."""
    content = text.encode() if isinstance(text, str) else text
    return client.post(path, content=content, headers={"Content-Type": "application/json"})


def _refused(response: Any, field: str, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == ("invalid_request" if status == 422 else "payload_too_large")
    assert error["details"]["field"] == field, error
    return error


def _job_count(client: TestClient) -> int:
    return len(client.get("/jobs", params={"limit": 5000}).json())


# ------------------------------------------------------------------------ numbers
def _with(field: str, text: str) -> str:
    """The job body with ``field`` written as the raw JSON ``text``."""
    rest = {key: value for key, value in JOB.items() if key != field}
    return json.dumps(rest)[:-1] + f', "{field}": {text}}}'


@pytest.mark.parametrize(
    ("field", "texts"),
    [
        ("duration_s", ["1e12", "1e308"]),
        ("walltime_s", ["1e300", "31622401"]),
        ("duration_s", ["Infinity", "1e999", "-Infinity", "NaN"]),  # 1e999 is inf to json
        ("gpus", ["true", '"8"', "8.0"]),
        ("preemptible", ['"yes"', "1"]),
    ],
)
def test_numbers_must_be_finite_bounded_and_of_their_type(
    bank: TestClient, field: str, texts: list[str]
) -> None:
    before = _job_count(bank)
    for text in texts:
        _refused(_raw(bank, "/jobs", _with(field, text)), field)
    assert _job_count(bank) == before
    within = bank.post("/jobs", json={**JOB, "duration_s": 3600, "walltime_s": 31622400})
    assert within.status_code == 201, within.text


# ------------------------------------------------------------------------- text
@pytest.mark.parametrize("field", ["command", "name", "purpose", "image"])
def test_text_with_a_nul_byte_is_refused(bank: TestClient, field: str) -> None:
    before = _job_count(bank)
    error = _refused(bank.post("/jobs", json={**JOB, field: "ok\x00rm -rf /"}), field)
    assert "control characters" in error["message"]
    assert "U+0000" in error["message"]
    _refused(_raw(bank, "/jobs", json.dumps({**JOB, field: "x\ud800"})), field)  # surrogate
    assert _job_count(bank) == before


def test_single_line_fields_refuse_line_breaks_but_a_command_may_span_lines(
    bank: TestClient,
) -> None:
    _refused(bank.post("/jobs", json={**JOB, "name": "a\nb"}), "name")
    answer = bank.post("/jobs", json={**JOB, "command": "set -e\n\techo hi\r\n"})
    assert answer.status_code == 201, answer.text


def test_nul_in_path_and_query_parameters_is_refused(bank: TestClient) -> None:
    _refused(bank.get("/jobs/job-1%00"), "job_id")
    _refused(bank.get("/jobs", params={"tenant_id": "t\x00"}), "tenant_id")
    _refused(bank.get("/nodes", params={"site_id": "jkt1\x00"}), "site_id")


# ----------------------------------------------------------------- JSON shape
def _kyc(identification: Any) -> dict[str, Any]:
    return {
        "organization": {"name": "Bank Nusantara Digital", "countries": ["ID"]},
        "end_uses": ["financial-services-ai"],
        "identification": identification,
    }


def test_a_900_level_nested_identification_is_refused_and_not_stored(
    bank: TestClient, ops: TestClient
) -> None:
    cases_before = ops.get("/kyc/cases").json()
    body = json.dumps(_kyc({}))[:-3] + '{"a": ' * 900 + "1" + "}" * 900 + "}"
    error = _refused(_raw(bank, "/kyc/cases", body), "identification." + ".".join(["a"] * 15))
    assert "nested deeper than 16 levels" in error["message"]
    listed = ops.get("/kyc/cases")  # the officers' list still answers, unchanged
    assert listed.status_code == 200
    assert listed.json() == cases_before
    nested: Any = 1
    for _ in range(14):  # the body is level 1, identification level 2: 16 in all
        nested = {"a": nested}
    answer = bank.post("/kyc/cases", json=_kyc(nested))
    assert answer.status_code == 201, answer.text
    assert ops.get("/kyc/cases").status_code == 200


def test_identification_is_bounded_even_within_the_body_depth(bank: TestClient) -> None:
    wide = {f"k{i}": i for i in range(2001)}
    error = _refused(bank.post("/kyc/cases", json=_kyc(wide)), "identification")
    assert "2000 entries" in error["message"]
    long_string = {"note": "x" * 10_001}
    _refused(bank.post("/kyc/cases", json=_kyc(long_string)), "identification")
    huge_int = '{"n": ' + "9" * 30 + "}"
    body = json.dumps(_kyc({}))[:-3] + huge_int + "}"
    _refused(_raw(bank, "/kyc/cases", body), "identification")
    nan = json.dumps(_kyc({}))[:-3] + '{"n": NaN}}'
    _refused(_raw(bank, "/kyc/cases", nan), "identification")


@pytest.mark.parametrize("depth", [17, 300, 100_000])
def test_a_deeply_nested_body_is_refused_before_parsing(api: Api, depth: int) -> None:
    anonymous = api(None)  # refused before authentication, too
    body = "[" * depth + "]" * depth
    error = _refused(_raw(anonymous, "/jobs", body), ".".join(["0"] * 16))
    assert "nested deeper than 16 levels" in error["message"]


def test_a_number_of_thousands_of_digits_is_refused(bank: TestClient) -> None:
    body = '{"gpus": ' + "9" * 5000 + ', "purpose": "x", "command": "true"}'
    error = _refused(_raw(bank, "/jobs", body), "gpus")
    assert "more than 100 digits" in error["message"]


def test_invalid_json_is_a_422_on_the_body(bank: TestClient) -> None:
    error = _refused(_raw(bank, "/jobs", '{"gpus": 8,'), "body")
    assert "invalid JSON" in error["message"]
    _refused(_raw(bank, "/jobs", b'{"gpus": "\xff"}'), "body")


# ------------------------------------------------------------------ body size
def test_a_2_mib_body_is_413_before_authentication(api: Api, bank: TestClient) -> None:
    big = json.dumps({**JOB, "name": "x" * (2 << 20)})
    for client in (bank, api(None), api("glt_forged")):
        error = _refused(_raw(client, "/jobs", big), "body", status=413)
        assert error["details"]["limit_bytes"] == 1 << 20


def test_a_streamed_body_without_length_is_cut_at_the_cap(bank: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = bank.post("/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    _refused(response, "body", status=413)


def test_a_body_on_a_route_that_reads_none_is_capped_too(api: Api) -> None:
    response = api(None).request("GET", "/health", content=b"x" * (2 << 20))
    _refused(response, "body", status=413)


@pytest.fixture
def small_upload_api(ctx: ServiceContext, demo: list[DemoUser]) -> Iterator[TestClient]:
    settings = ctx.settings.model_copy(update={"run_scheduler": False, "max_upload_bytes": 4096})
    app = create_app(ctx=ServiceContext(ctx.db, settings=settings, clock=ctx.clock))
    with TestClient(app, base_url="http://testserver/api/v1") as client:
        client.headers["Authorization"] = f"Bearer {_user(demo, 'ops@indosat.example').token}"
        yield client


def test_an_upload_over_its_cap_is_413_and_one_under_it_is_parsed(
    small_upload_api: TestClient,
) -> None:
    big = small_upload_api.post(
        "/lists", data={"format": "csl-json"}, files={"files": ("csl.json", b" " * 8192)}
    )
    _refused(big, "body", status=413)
    small = small_upload_api.post(
        "/lists", data={"format": "csl-json"}, files={"files": ("csl.json", b"[")}
    )
    assert small.status_code == 422, small.text
    assert small.json()["code"] == "invalid_list"


def test_an_upload_is_read_only_after_authentication_and_the_role_check(
    api: Api, bank: TestClient
) -> None:
    """A form declared as parameters is parsed before the dependencies run; the import reads
    its form itself, so a caller without the right never has an upload parsed or spooled:
    a malformed multipart body answers 401 / 403, not a form error."""
    broken = {"Content-Type": "multipart/form-data; boundary=x"}
    body = b"--x\r\nContent-Disposition: form-data; name=files; filename=a\r\n\r\n" * 3
    assert api(None).post("/lists", content=body, headers=broken).status_code == 401
    assert bank.post("/lists", content=body, headers=broken).status_code == 403
    files = {"files": ("csl.json", b"[]")}
    assert bank.post("/lists", data={"format": "csl-json"}, files=files).status_code == 403


# --------------------------------------------------------------- nested lists
@pytest.mark.parametrize(
    ("fmt", "name", "content"),
    [
        ("csl-json", "csl.json", '{"results": [' + "[" * 100_000 + "]" * 100_000 + "]}"),
        ("csl-json", "csl.json", '{"results": [{"name": "A", "ids": ' + "[" * 900 + "]" * 900),
        (
            "opensanctions",
            "entities.ftm.json",
            '{"id": "x", "schema": "Person", "properties": {"name": '
            + "[" * 5000
            + "]" * 5000
            + "}}\n",
        ),
    ],
)
def test_a_deeply_nested_list_file_is_an_invalid_list(
    ops: TestClient, fmt: str, name: str, content: str
) -> None:
    answer = ops.post("/lists", data={"format": fmt}, files={"files": (name, content.encode())})
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["code"] == "invalid_list"
    assert "nested deeper than 32 levels" in error["message"]
    assert error["details"]["line"] == 1


# ------------------------------------------------------------------ dates
def test_lease_dates_in_year_9999_are_refused(bank: TestClient) -> None:
    far = {"start": "9999-01-01T00:00:00Z", "end": "9999-12-31T00:00:00Z", "gpus": 8}
    error = _refused(bank.post("/leases", json=far), "start")
    assert "between 2000-01-01 and 2100-01-01" in error["message"]
    overflow = {"start": "2027-01-01T00:00:00Z", "end": "9999-12-31T23:59:59-23:59", "gpus": 8}
    _refused(bank.post("/leases", json=overflow), "end")


def test_a_lease_must_end_within_the_horizon(bank: TestClient) -> None:
    past_horizon = {"start": "2027-01-01T00:00:00Z", "end": "2099-12-31T00:00:00Z", "gpus": 8}
    error = _refused(bank.post("/leases", json=past_horizon), "end")
    assert "1,098 days" in error["message"]


def test_report_as_of_far_away_is_refused(ops: TestClient, bank: TestClient) -> None:
    disclosure = f"/reports/tenants/{bank.get('/me').json()['tenant_id']}/disclosure"
    for as_of in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1e300"]:
        _refused(ops.get(disclosure, params={"as_of": as_of}), "as_of")
    within = ops.get(disclosure, params={"as_of": "2026-01-01"})
    assert within.status_code == 200, within.text


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
def test_policy_as_of_far_away_is_refused(ops: TestClient, as_of: str) -> None:
    _refused(ops.get("/policy", params={"as_of": as_of}), "as_of")


# ----------------------------------------------------------- report numbers
@pytest.mark.parametrize(
    ("param", "values"),
    [
        ("threshold", ["1e-999999", "1e999999", "NaN", "Infinity", "-1e26", "ten"]),
        ("peak_flops_per_gpu", ["1e-999999", "1e99"]),
        ("utilisation", ["1e-999999", "1.5"]),
    ],
)
def test_large_runs_terms_are_finite_and_bounded(
    bank: TestClient, ops: TestClient, param: str, values: list[str]
) -> None:
    assert bank.post("/jobs", json={**JOB, "walltime_s": 86400.0}).status_code == 201
    for value in values:
        _refused(ops.get("/reports/large-runs", params={param: value}), param)
    params = {"threshold": "1e18", "peak_flops_per_gpu": "2.5e15", "utilisation": "0.4"}
    report = ops.get("/reports/large-runs", params=params)
    assert report.status_code == 200, report.text
    assert report.json()["threshold_ops"] == "1E+18"
    assert report.json()["runs"], report.json()


# ------------------------------------------------------------- KYC numbers
def test_an_owner_percent_is_a_bounded_number(bank: TestClient) -> None:
    def case(percent: object) -> Any:
        owner = {"ref": "o1", "party": {"name": "Owner Holdings"}, "percent": percent}
        return bank.post("/kyc/cases", json={**_kyc({}), "owners": [owner]})

    for refused in ("1e-999999", True, 0, 100.5):
        _refused(case(refused), "owners.0.percent")
    accepted = case(100 / 3)  # a float's 15 decimals are rounded to 10
    assert accepted.status_code == 201, accepted.text


def test_an_ownership_date_far_away_is_refused(bank: TestClient) -> None:
    owner = {"ref": "o1", "party": {"name": "O"}, "percent": 10, "since": "0001-01-01"}
    _refused(bank.post("/kyc/cases", json={**_kyc({}), "owners": [owner]}), "owners.0.since")
