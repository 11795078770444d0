"""Job logs are read in bounded chunks, through the API and the CLI, never whole: offsets,
sizes, completeness, characters never cut, the stored log when there is no file, and a
300 MB log served without loading it."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient

from gpulease.cli import remote
from gpulease.cli.client import ApiClient, Credentials
from gpulease.persistence.tables import JobLog
from gpulease.services import identity, job_logs
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

Api = Callable[[str | None], TestClient]
BIG = 300 * 1000 * 1000


def _token(demo: list[DemoUser], email: str) -> str:
    return next(u.token for u in demo if u.email == email)


@pytest.fixture
def inftech(demo: list[DemoUser]) -> str:
    return _token(demo, "admin@inftech.example")


def _submit(api: Api, token: str) -> str:
    answer = api(token).post(
        "/jobs", json={"gpus": 4, "purpose": "financial AI", "command": "python train.py"}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _log_file(ctx: ServiceContext, job_id: str) -> Path:
    path = ctx.settings.data_dir / "logs" / f"{job_id}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_300_mb_log_is_served_in_bounded_chunks(
    ctx: ServiceContext, api: Api, inftech: str, demo: list[DemoUser]
) -> None:
    job_id = _submit(api, inftech)
    path = _log_file(ctx, job_id)
    with path.open("wb") as handle:  # sparse: 300 MB without writing them
        handle.write(b"first line\n")
        handle.truncate(BIG - len(b"last line\n"))
        handle.seek(0, os.SEEK_END)
        handle.write(b"last line\n")
    client = api(inftech)

    first = client.get(f"/jobs/{job_id}/logs").json()
    assert first["text"].startswith("first line\n")
    assert len(first["text"]) == job_logs.DEFAULT_CHUNK
    assert (first["offset"], first["next_offset"], first["size"]) == (0, 65536, BIG)
    assert first["complete"] is False
    assert first["state"] == "queued"

    most = client.get(f"/jobs/{job_id}/logs", params={"offset": 1000, "limit": 1 << 20}).json()
    assert len(most["text"]) == 1 << 20
    assert most["next_offset"] == 1000 + (1 << 20)

    for params, field in (({"limit": (1 << 20) + 1}, "limit"), ({"offset": -1}, "offset")):
        refused = client.get(f"/jobs/{job_id}/logs", params=params)
        assert refused.status_code == 422
        assert refused.json()["code"] == "invalid_request"
        assert refused.json()["details"]["field"] in (field, f"query.{field}")

    assert client.post(f"/jobs/{job_id}/cancel").status_code == 200
    end = client.get(f"/jobs/{job_id}/logs", params={"offset": BIG - 20}).json()
    assert end["text"].endswith("last line\n")
    assert (end["next_offset"], end["complete"]) == (BIG, True)

    # the service itself: a 1 MiB chunk of the 300 MB file costs about 1 MiB, not 300
    actor = identity.authenticate(ctx, inftech)
    tracemalloc.start()
    try:
        chunk = job_logs.read_chunk(ctx, actor, job_id, 5000, job_logs.MAX_CHUNK)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunk.next_offset - chunk.offset == job_logs.MAX_CHUNK
    assert peak < 16 << 20


def test_chunks_never_cut_a_character(ctx: ServiceContext, api: Api, inftech: str) -> None:
    job_id = _submit(api, inftech)
    text = "".join(f"zeile {i}: größe, 東京, 🚀\n" for i in range(20))
    _log_file(ctx, job_id).write_text(text, encoding="utf-8")
    client = api(inftech)
    pieces, offset = [], 0
    while True:
        chunk = client.get(f"/jobs/{job_id}/logs", params={"offset": offset, "limit": 7}).json()
        assert "\ufffd" not in chunk["text"]
        assert chunk["next_offset"] - offset <= 7
        pieces.append(chunk["text"])
        if chunk["next_offset"] >= chunk["size"]:
            break
        offset = chunk["next_offset"]
    assert "".join(pieces) == text


def test_the_stored_log_is_served_when_there_is_no_file(
    ctx: ServiceContext, api: Api, inftech: str, demo: list[DemoUser]
) -> None:
    job_id = _submit(api, inftech)
    client = api(inftech)
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 200
    with ctx.db.transaction() as tx:
        tx.add(JobLog(job_id=job_id, text="stored " * 20_000))
    first = client.get(f"/jobs/{job_id}/logs", params={"limit": 1000}).json()
    assert first["text"] == ("stored " * 20_000)[:1000]
    assert (first["size"], first["complete"]) == (140_000, False)
    last = client.get(f"/jobs/{job_id}/logs", params={"offset": 139_990}).json()
    assert (last["text"], last["next_offset"], last["complete"]) == ("ed stored ", 140_000, True)
    bank = api(_token(demo, "admin@bank.example"))
    other = bank.get(f"/jobs/{job_id}/logs")
    assert other.status_code == 404
    assert other.json()["code"] == "not_found"


# ------------------------------------------------------------------------------- the CLI
@pytest.fixture
def cli_client(api: Api, monkeypatch: pytest.MonkeyPatch, inftech: str) -> list[int]:
    """The CLI's ApiClient over the in-process app; yields the sizes of the answers."""
    sizes: list[int] = []

    class InProcess(ApiClient):
        def __init__(self, creds: Credentials | None = None, timeout: float = 30.0) -> None:
            self.creds = Credentials("http://testserver", inftech)
            self._http: httpx.Client = api(inftech)
            self._http.event_hooks["response"] = [lambda r: sizes.append(_size(r))]

    monkeypatch.setattr(remote, "ApiClient", InProcess)
    return sizes


def _size(response: httpx.Response) -> int:
    response.read()
    return len(response.content)


def test_cli_job_logs_pages_through_a_large_log_in_chunks(
    ctx: ServiceContext,
    api: Api,
    inftech: str,
    cli_client: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    job_id = _submit(api, inftech)
    text = "".join(f"step {i:06d} loss 0.{i:04d}\n" for i in range(120_000))  # ~3.1 MB
    _log_file(ctx, job_id).write_text(text)
    remote.job_logs(job_id, follow=False)
    assert capsys.readouterr().out == text
    assert len(cli_client) >= len(text) // job_logs.DEFAULT_CHUNK
    assert max(cli_client) < 2 * job_logs.DEFAULT_CHUNK


def test_cli_job_logs_follow_prints_output_as_it_comes(
    ctx: ServiceContext,
    api: Api,
    inftech: str,
    cli_client: list[int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = _submit(api, inftech)
    path = _log_file(ctx, job_id)
    path.write_text("epoch 1\n")
    seen: list[str] = []
    more = iter(["epoch 2\n", "epoch 3 (partial"])

    def between_polls(_seconds: float) -> None:
        """The job goes on between two polls: what was printed so far is recorded, then
        it writes more; at the end it is cancelled."""
        seen.append(capsys.readouterr().out)
        following = next(more, None)
        if following is None:
            assert api(inftech).post(f"/jobs/{job_id}/cancel").status_code == 200
            return
        with path.open("a") as handle:
            handle.write(following)

    monkeypatch.setattr(remote, "time", SimpleNamespace(sleep=between_polls))
    remote.job_logs(job_id, follow=True)
    seen.append(capsys.readouterr().out)
    assert seen == ["epoch 1\n", "epoch 2\n", "epoch 3 (partial", "\n"]
