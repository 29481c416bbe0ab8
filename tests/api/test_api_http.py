"""The HTTP API against a real ``paretoedge serve`` process on loopback."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import TOKEN, Server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _stored(server: Server, device: str) -> list[dict[str, Any]]:
    """Every ranked candidate on ``device`` with its rank, straight from storage."""
    from paretoedge import storage as ps

    storage = ps.open_storage(server.storage)
    try:
        page = ps.get_front(storage, study="qs", device=device, max_rank=None, limit=1000)
        return [
            {
                "trial": e.candidate.trial_number,
                "rank": e.rank,
                "accuracy": e.candidate.accuracy,
                "latency_ms": e.metrics.latency_ms,
                "size_bytes": e.candidate.size_bytes,
            }
            for e in page.entries
        ]
    finally:
        storage.close()


def test_studies_and_trials(server: Server) -> None:
    with server.client() as c:
        studies = c.get("/studies").json()["studies"]
        assert [s["name"] for s in studies] == ["qs"]
        s = studies[0]
        assert (s["trials_complete"], s["trials_pruned"], s["trials_failed"]) == (38, 1, 1)
        detail = c.get("/studies/qs").json()
        assert detail["config"]["model"] == "tiny-bert" and detail["devices"] == ["rpi4", "host"]
        one = c.get("/studies/qs/trials/1").json()
        assert one["baseline_name"] == "int8" and set(one["metrics"]) == {"rpi4", "host"}
        failed = c.get("/studies/qs/trials", params={"state": "failed"}).json()["trials"]
        assert [t["state"] for t in failed] == ["failed"]


@pytest.mark.parametrize("device", ["rpi4", "host"])
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"max_latency_ms": 12.0},
        {"min_accuracy": 0.8},
        {"max_size_mb": 10.0},
        {"max_latency_ms": 15.0, "min_accuracy": 0.75, "max_size_mb": 20.0},
    ],
    ids=["none", "latency", "accuracy", "size", "all"],
)
def test_front_filters_match_brute_force(
    server: Server, device: str, filters: dict[str, float]
) -> None:
    expected = {
        r["trial"]
        for r in _stored(server, device)
        if r["rank"] == 0
        and r["latency_ms"] <= filters.get("max_latency_ms", math.inf)
        and r["accuracy"] >= filters.get("min_accuracy", -math.inf)
        and r["size_bytes"] <= filters.get("max_size_mb", math.inf) * 1e6
    }
    with server.client() as c:
        body = c.get("/studies/qs/front", params={"device": device, **filters}).json()
    assert body["total"] == len(expected)
    assert {e["trial"] for e in body["entries"]} == expected
    assert all(e["rank"] == 0 for e in body["entries"])
    lat = [e["latency_ms"] for e in body["entries"]]
    assert lat == sorted(lat)


@pytest.mark.parametrize(
    "sort,key,reverse", [("accuracy", "accuracy", True), ("size", "size_bytes", False)]
)
def test_front_sort(server: Server, sort: str, key: str, reverse: bool) -> None:
    with server.client() as c:
        entries = c.get("/studies/qs/front", params={"device": "rpi4", "sort": sort}).json()[
            "entries"
        ]
    values = [e[key] for e in entries]
    assert values == sorted(values, reverse=reverse) and len(values) > 3
    assert any(e["is_baseline"] for e in entries)  # the baselines are on this front, marked


def test_front_can_list_the_baselines_for_reference(server: Server) -> None:
    with server.client() as c:
        for device in ("rpi4", "host"):
            plain = c.get("/studies/qs/front", params={"device": device}).json()
            both = c.get("/studies/qs/front", params={"device": device, "baselines": "true"})
            assert both.status_code == 200
            doc = both.json()
            n = len(plain["entries"])
            assert doc["entries"][:n] == plain["entries"]
            extra = doc["entries"][n:]
            assert all(e["is_baseline"] and e["rank"] > 0 for e in extra)
            names = {e["baseline_name"] for e in doc["entries"] if e["is_baseline"]}
            assert names == {"teacher", "int8"}


def test_pagination_walks_every_entry_once(server: Server) -> None:
    with server.client() as c:
        full = c.get("/studies/qs/front", params={"device": "host", "all": "true"}).json()
        seen: list[int] = []
        offset = 0
        while True:
            page = c.get(
                "/studies/qs/front",
                params={"device": "host", "all": "true", "limit": 7, "offset": offset},
            ).json()
            assert page["total"] == full["total"] and len(page["entries"]) <= 7
            if not page["entries"]:
                break
            seen += [e["trial"] for e in page["entries"]]
            offset += 7
        assert seen == [e["trial"] for e in full["entries"]]
        assert len(seen) == full["total"] == 38
        ranks = [e["rank"] for e in full["entries"]]
        assert ranks == sorted(ranks) and ranks[-1] > 0
        trials = c.get("/studies/qs/trials", params={"limit": 15, "offset": 30}).json()["trials"]
        assert [t["trial"] for t in trials] == list(range(30, 40))


@pytest.mark.parametrize(
    "path,status,needle",
    [
        ("/studies/nope", 404, "study 'nope' not found"),
        ("/studies/qs/trials/999", 404, "trial 999"),
        ("/studies/qs/front?device=jetson", 404, "not a device of study 'qs'"),
        ("/studies/qs/front", 422, "device"),
        ("/studies/qs/front?device=rpi4&limit=501", 422, "less than or equal to 500"),
        ("/studies/qs/front?device=rpi4&limit=0", 422, "greater than or equal to 1"),
        ("/studies/qs/front?device=rpi4&offset=-1", 422, "offset"),
        ("/studies/qs/front?device=rpi4&sort=speed", 422, "latency"),
        ("/studies/qs/front?device=rpi4&min_accuracy=1.5", 422, "min_accuracy"),
        ("/studies/qs/front?device=rpi4&max_latency_ms=inf", 422, "finite"),
        ("/studies/qs/front?device=rpi4&max_size_mb=abc", 422, "max_size_mb"),
        ("/studies/qs/trials/-3", 422, "trial"),
        ("/studies/qs/trials?state=done", 422, "state"),
        ("/studies/qs/plot", 422, "device"),
        ("/studies/qs/plot?device=rpi4&device=rpi4", 422, "distinct device names"),
        ("/studies/qs/plot?device=rpi4&format=svg", 422, "format"),
    ],
)
def test_malformed_input_is_a_clear_4xx(
    server: Server, path: str, status: int, needle: str
) -> None:
    with server.client() as c:
        r = c.get(path)
    assert r.status_code == status, r.text
    assert needle in r.text


def test_writes_need_the_token(server: Server) -> None:
    with server.client() as c:
        r = c.post("/studies", json={"bundled": "quickstart"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = c.post("/studies/qs/stop", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "bearer token" in r.json()["detail"]
        r = c.post("/studies/qs/stop", headers={"Authorization": f"Basic {TOKEN}"})
        assert r.status_code == 401
        # accepted token, then the request itself is judged
        r = c.post("/studies/qs/stop", headers=AUTH)
        assert r.status_code == 409 and "no run going" in r.json()["detail"]
        r = c.post("/studies", headers=AUTH, json={"bundled": "/etc/passwd"})
        assert r.status_code == 422
        assert "allowed mcu, mixed_precision, quickstart, toolbox" in r.text
        r = c.post("/studies", headers=AUTH, json={"bundled": "quickstart", "config": {}})
        assert r.status_code == 422 and "exactly one of" in r.text
        r = c.post("/studies", headers=AUTH, json={"config": {"name": "x", "model": "tiny-bert"}})
        assert r.status_code == 422 and "invalid" in r.json()["detail"]
        r = c.post("/studies", headers=AUTH, json={"bundled": "quickstart", "name": "../x"})
        assert r.status_code == 422
        # not JSON, or JSON Python's parser accepts (Infinity) that the answer must not echo
        json_ct = {**AUTH, "content-type": "application/json"}
        for body in (b"{not json", b"Infinity", b'{"config": NaN}', b'{"name": -Infinity}'):
            r = c.post("/studies", headers=json_ct, content=body)
            assert r.status_code == 422 and r.json()["detail"], body


def test_writes_disabled_without_a_token(readonly_server: Server) -> None:
    with readonly_server.client() as c:
        for headers in ({}, AUTH):
            r = c.post("/studies", json={"bundled": "quickstart"}, headers=headers)
            assert r.status_code == 403
            assert "PARETOEDGE_API_TOKEN" in r.json()["detail"]
        assert c.get("/studies").status_code == 200  # reads still served
    assert "write endpoints are disabled" in readonly_server.log.read_text()


def test_openapi_schema_and_plot_json(server: Server) -> None:
    with server.client() as c:
        schema = c.get("/openapi.json").json()
        assert {"/studies", "/studies/{name}/front", "/studies/{name}/stop"} <= set(schema["paths"])
        assert "HTTPBearer" in schema["components"]["securitySchemes"]
        fig = c.get("/studies/qs/plot", params={"device": ["rpi4", "host"]}).json()
    traces = fig["data"]
    assert {t["xaxis"] for t in traces} == {"x", "x2"}  # two panels side by side
    front = [t for t in traces if t["name"] == "front"]
    dominated = [t for t in traces if t["name"] == "dominated"]
    assert front and dominated and dominated[0]["opacity"] < front[0]["opacity"]
    assert any("trial" in h and "sparsity" in h for h in front[0]["hovertext"])


# ------------------------------------------------------------------ property-based, from OpenAPI

_TEXT = st.text(min_size=0, max_size=30)
_ANY = st.one_of(
    _TEXT,
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "rpi4", "host", "qs", "nan", "-inf", "1e400", "true", "0", "%00"]),
)


def _value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of a parameter's declared type, including its edges, or anything at all."""
    kinds = [s.get("type") for s in schema.get("anyOf", [schema])]
    if schema.get("enum"):
        typed: st.SearchStrategy[Any] = st.sampled_from(schema["enum"])
    elif "integer" in kinds:
        typed = st.integers(min_value=-10, max_value=10**7)
    elif "number" in kinds:
        typed = st.floats(allow_nan=True, allow_infinity=True)
    elif "boolean" in kinds:
        typed = st.booleans()
    elif "array" in kinds:
        typed = st.lists(st.sampled_from(["rpi4", "host", "x"]) | _TEXT, max_size=10)
    else:
        typed = st.sampled_from(["qs", "rpi4", "host"]) | _TEXT
    return st.one_of(typed, _ANY)


@pytest.fixture(scope="module")
def operations(server: Server) -> list[tuple[str, list[dict[str, Any]]]]:
    with server.client() as c:
        schema = c.get("/openapi.json").json()
    return [
        (path, op.get("parameters", []))
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method == "get"
    ]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_5xx_on_any_get_from_the_schema(
    server: Server, operations: list[tuple[str, list[dict[str, Any]]]], data: st.DataObject
) -> None:
    path, params = data.draw(st.sampled_from(operations))
    query: dict[str, Any] = {}
    url = path
    for p in params:
        if not p.get("required") and data.draw(st.booleans()):
            continue
        value = data.draw(_value(p.get("schema", {})))
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", quote(str(value), safe="") or "x")
        else:
            query[p["name"]] = value
    with server.client() as c:
        r = c.get(url, params=query)
    assert r.status_code < 500, (url, query, r.text)


_FIELD = _ANY | st.lists(_TEXT, max_size=3) | st.dictionaries(_TEXT, _ANY, max_size=3)
_BODY = st.dictionaries(
    st.sampled_from(["config", "bundled", "overrides", "name", "x"]), _FIELD, max_size=4
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.one_of(_BODY, _ANY))
def test_no_5xx_on_launch_bodies(server: Server, body: Any) -> None:
    if isinstance(body, dict) and "bundled" in body and "config" not in body:
        body["bundled"] = "not-a-study"  # never start a real run from generated input
    with server.client() as c:
        # json.dumps writes NaN/Infinity for non-finite floats: invalid JSON, also a 4xx
        r = c.post(
            "/studies",
            content=json.dumps(body).encode(),
            headers={**AUTH, "content-type": "application/json"},
        )
    assert 400 <= r.status_code < 500, r.text


# ------------------------------------------------------------------ slow: real runs, a browser


@pytest.mark.slow
def test_plot_html_renders_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from PIL import Image

    with server.client() as c:
        r = c.get("/studies/qs/plot", params={"device": ["rpi4", "host"], "format": "html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = tmp_path / "front.html"
    page.write_text(r.text)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,600",
         "--virtual-time-budget=5000", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    img = Image.open(shot).convert("RGB")
    assert img.size == (1100, 600)
    pixels = list(img.getdata())
    # plotly drew the front markers (#1f77b4) and the baselines (#d62728), blended by opacity
    blue = sum(1 for r_, g, b in pixels if b - r_ > 60)
    red = sum(1 for r_, g, b in pixels if r_ - max(g, b) > 60)
    assert blue > 200 and red > 50, (blue, red)


def _tiny_config() -> dict[str, Any]:
    """A study that cannot finish before the test stops it: every sparsity is a new candidate
    (a stepped space of 12 points finished its 200 trials in 38 s, duplicates reusing their
    twins' results, and once on CI before the stop arrived)."""
    return {
        "name": "launched",
        "model": "tiny-bert",
        "task": "sentiment",
        "seed": 0,
        "seq_len": 16,
        "data": {"train_limit": 32, "validation_limit": 32, "test_limit": 32},
        "teacher": {"epochs": 0.02},
        "space": {"prune.sparsity": {"low": 0.0, "high": 0.5}, "quant.bits": [32, 8]},
        "objectives": ["accuracy", "latency_ms", "size_bytes"],
        "devices": ["host"],
        "sampler": {"name": "random"},
        "budget": {"trials": 100_000},
        "recovery": {"steps": 1},
        "baselines": [],
    }


@pytest.mark.slow
def test_launch_a_study_and_stop_it(server: Server) -> None:
    from paretoedge import storage as ps

    with server.client() as c:
        r = c.post("/studies", headers=AUTH, json={"config": _tiny_config()})
        assert r.status_code == 202, r.text
        assert c.post("/studies", headers=AUTH, json={"config": _tiny_config()}).status_code == 409
        storage = ps.open_storage(server.storage)
        try:
            deadline = time.monotonic() + 240
            done = 0
            while time.monotonic() < deadline:
                job = c.get("/studies/launched/job").json()
                assert job["running"], job["log"]
                names = [s.study.name for s in ps.list_studies(storage)]
                if "launched" in names:
                    done = len(ps.list_candidates(storage, study="launched", states=["complete"]))
                    if done >= 1:
                        break
                time.sleep(1)
            assert done >= 1, c.get("/studies/launched/job").json()["log"]
            r = c.post("/studies/launched/stop", headers=AUTH)
            assert r.status_code == 200, r.text
            assert r.json()["running"] is False
            assert ps.get_study(storage, name="launched").status == "stopped"
            front = c.get("/studies/launched/front", params={"device": "host"}).json()
            assert front["total"] >= 1
        finally:
            storage.close()
    assert sys.executable  # the child ran this interpreter's paretoedge


def test_front_and_trial_carry_the_worst_case_of_an_early_exit_candidate(
    tmp_path: Path,
) -> None:
    """The same routes, in-process on a study with an early-exit candidate: its expected
    latency in ``latency_ms``, the full path in ``latency_worst_ms``; None elsewhere."""
    from _query_data import EXIT_STUDY, populate_exits
    from fastapi.testclient import TestClient

    from paretoedge.api import create_app

    url = f"sqlite:///{tmp_path / 'ex.db'}"
    truth = populate_exits(url)
    with TestClient(create_app(storage_url=url)) as client:
        front = client.get(f"/studies/{EXIT_STUDY}/front", params={"device": "rpi4"}).json()
        trial = client.get(f"/studies/{EXIT_STUDY}/trials/1").json()
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    got = {e["trial"]: (e["latency_ms"], e["latency_worst_ms"]) for e in front["entries"]}
    assert got == truth
    assert trial["metrics"]["rpi4"]["latency_worst_ms"] == truth[1][1]
    assert trial["metrics"]["host"]["latency_worst_ms"] > trial["metrics"]["host"]["latency_ms"]
    assert "latency_worst_ms" in schema["FrontEntryOut"]["properties"]
    assert "latency_worst_ms" in schema["DeviceMetricsOut"]["properties"]
