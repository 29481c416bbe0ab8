"""Study launches over HTTP are judged by the CLI's validators: every malformed one is a
4xx with a one-line message, nothing is stored or started, and the server logs no
traceback. A launched study reaches only bundled data or the configured data directory.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TOKEN, Server, start_server, stop_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent.parent))

from _malformed import MUTATIONS, Mutation, db_digest, sqlite_path, valid_study  # noqa: E402

AUTH = {"Authorization": f"Bearer {TOKEN}"}
_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _jobs(server: Server) -> list[str]:
    root = server.log.parent / "api-jobs"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def _post_raw(server: Server, content: bytes) -> tuple[int, Any]:
    headers = {**AUTH, "content-type": "application/json"}
    with server.client() as c:
        r = c.post("/studies", content=content, headers=headers)
    return r.status_code, r.json()


def _post(server: Server, body: Any) -> tuple[int, Any]:
    return _post_raw(server, json.dumps(body).encode())  # NaN/Infinity: invalid JSON, a 4xx


def _assert_refused(status: int, answer: Any) -> None:
    assert 400 <= status < 500, answer
    detail = answer["detail"]
    if isinstance(detail, str):
        assert "\n" not in detail and len(detail) < 600, detail[:300]


def _assert_clean(server: Server, before: str) -> None:
    assert db_digest(sqlite_path(server.storage)) == before
    assert _jobs(server) == []
    assert "Traceback" not in server.log.read_text()


def _override(mutation: Mutation) -> str:
    value = yaml.safe_dump(mutation.value, default_flow_style=True, width=10**9)
    return f"{'.'.join(mutation.path)}={value.removesuffix(chr(10) + '...' + chr(10)).strip()}"


@_SETTINGS
@given(mutation=st.sampled_from(MUTATIONS), as_override=st.booleans())
def test_malformed_launches_are_refused(
    server: Server, mutation: Mutation, as_override: bool
) -> None:
    before = db_digest(sqlite_path(server.storage))
    if as_override:
        body: dict[str, Any] = {"config": valid_study("api"), "overrides": [_override(mutation)]}
    else:
        body = {"config": mutation.apply(valid_study("api"))}
    status, answer = _post(server, body)
    _assert_refused(status, answer)
    if not as_override and status == 422 and isinstance(answer["detail"], str):
        assert mutation.field.rstrip("*") in answer["detail"] or "config" in answer["detail"]
    _assert_clean(server, before)


@pytest.mark.parametrize(
    "body",
    [
        {"bundled": "quickstart", "overrides": ["model=" + "a" * 200_000]},
        {"bundled": "quickstart", "overrides": ["description=" + "[" * 5000 + "]" * 5000]},
        {"bundled": "quickstart", "overrides": ["a." * 5000 + "b=1"]},
        {"bundled": "quickstart", "overrides": ["seed=1"] * 51},
        {"bundled": "quickstart", "name": ".."},
        {"bundled": "quickstart", "name": "-"},
        {"bundled": "quickstart", "name": "a/b"},
        {"bundled": "../../etc/passwd"},
        {"config": {**valid_study("api"), "task": "/etc/passwd"}},
        {"config": {**valid_study("api"), "model": "/etc"}},
    ],
    ids=["long-override", "nested-override", "deep-key", "many-overrides", "name-dotdot",
         "name-dash", "name-slash", "bundled-path", "task-passwd", "model-etc"],
)  # fmt: skip
def test_known_bad_launches(server: Server, body: dict[str, Any]) -> None:
    before = db_digest(sqlite_path(server.storage))
    status, answer = _post(server, body)
    _assert_refused(status, answer)
    _assert_clean(server, before)


@pytest.mark.parametrize("depth", [1000, 50_000])
def test_deeply_nested_and_huge_bodies(server: Server, depth: int) -> None:
    before = db_digest(sqlite_path(server.storage))
    status, answer = _post_raw(
        server, ('{"config": {"fixed": ' + "[" * depth + "]" * depth + "}}").encode()
    )
    _assert_refused(status, answer)
    status, answer = _post_raw(server, b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert status == 413, answer
    _assert_clean(server, before)


@pytest.fixture(scope="module")
def data_server(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    """The API with a data directory (PARETOEDGE_DATA_DIR) holding one task file."""
    data = tmp_path_factory.mktemp("data")
    (data / "task.csv").write_text("text,label\ngood,1\nbad,0\n")
    old = os.environ.get("PARETOEDGE_DATA_DIR")
    os.environ["PARETOEDGE_DATA_DIR"] = str(data)
    try:
        s = start_server(db_url, tmp_path_factory.mktemp("home-data"), token=TOKEN)
    finally:
        if old is None:
            os.environ.pop("PARETOEDGE_DATA_DIR")
        else:
            os.environ["PARETOEDGE_DATA_DIR"] = old
    yield s, data
    stop_server(s)


def test_tasks_only_from_the_data_directory(
    data_server: tuple[Server, Path], server: Server, tmp_path: Path
) -> None:
    with_data, data_dir = data_server
    outside = tmp_path / "task.csv"
    outside.write_text("text,label\ngood,1\nbad,0\n")
    inside = str(data_dir / "task.csv")
    # quant.bits [3] is checked after the task: a 422 naming it shows the task passed
    broken = {**valid_study("d"), "space": {"quant.bits": [3]}, "task": inside}
    status, answer = _post(with_data, {"config": broken})
    assert status == 422 and "space.quant.bits" in answer["detail"], answer
    status, answer = _post(with_data, {"config": {**valid_study("d"), "task": str(outside)}})
    assert status == 422 and "a path inside" in answer["detail"], answer
    status, answer = _post(server, {"config": {**valid_study("d"), "task": inside}})
    assert status == 422 and "PARETOEDGE_DATA_DIR" in answer["detail"], answer
    assert _jobs(with_data) == [] and "Traceback" not in with_data.log.read_text()
