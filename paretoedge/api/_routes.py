"""The routers: thin translations between HTTP and the storage/search functions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import HTMLResponse, Response

from paretoedge.api._deps import JobsDep, StorageDep, WriteAccess
from paretoedge.api._jobs import validate_launch
from paretoedge.api._schemas import (
    CandidateOut,
    ErrorOut,
    FrontOut,
    JobOut,
    LaunchIn,
    StudyDetailOut,
    StudyListOut,
    StudyOut,
    TrialPageOut,
)
from paretoedge.errors import NotFoundError

#: Largest page an HTTP client may ask for.
API_MAX_PAGE = 500
#: Most points per device in a plot served over HTTP.
API_MAX_PLOT_POINTS = 2000

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorOut, "description": "No such study, trial or device"},
    422: {"model": ErrorOut, "description": "Invalid parameter"},
}

StudyName = Annotated[str, Path(min_length=1, max_length=200, description="Study name")]
Limit = Annotated[int, Query(ge=1, le=API_MAX_PAGE, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Entries to skip")]

read = APIRouter(tags=["read"], responses=_ERRORS)
write = APIRouter(tags=["write"], responses=_ERRORS, dependencies=[WriteAccess])


def _summary(storage: StorageDep, name: str) -> StudyDetailOut:
    from paretoedge.storage import get_study, list_studies

    record = get_study(storage, name=name)  # NotFoundError with the stored names
    for s in list_studies(storage):
        if s.study.name == name:
            base = StudyOut.from_summary(s).model_dump()
            return StudyDetailOut(**base, config=dict(record.config))
    raise NotFoundError(f"study {name!r} not found")


@read.get("/health")
def health(storage: StorageDep) -> dict[str, str]:
    """Liveness: the server runs and its database answers."""
    from paretoedge.storage import list_studies

    list_studies(storage)
    return {"status": "ok", "storage": storage.url}


@read.get("/studies")
def studies(storage: StorageDep) -> StudyListOut:
    """Every study with its status, trial counts and devices."""
    from paretoedge.storage import list_studies

    return StudyListOut(studies=[StudyOut.from_summary(s) for s in list_studies(storage)])


@read.get("/studies/{name}")
def study(storage: StorageDep, name: StudyName) -> StudyDetailOut:
    """One study with its full configuration."""
    return _summary(storage, name)


@read.get("/studies/{name}/trials")
def trials(
    storage: StorageDep,
    name: StudyName,
    state: Annotated[
        list[Literal["running", "complete", "pruned", "failed"]] | None,
        Query(max_length=4, description="Only these states"),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> TrialPageOut:
    """The trials of a study by trial number, with every device's metrics."""
    from paretoedge.storage import list_candidates

    rows = list_candidates(storage, study=name, states=state, limit=limit, offset=offset)
    return TrialPageOut(
        study=name, limit=limit, offset=offset, trials=[CandidateOut.from_record(c) for c in rows]
    )


@read.get("/studies/{name}/trials/{trial}")
def trial(
    storage: StorageDep,
    name: StudyName,
    trial: Annotated[int, Path(ge=0, le=2**31 - 1, description="Optuna trial number")],
) -> CandidateOut:
    """The full config and every metric of one trial."""
    from paretoedge.storage import get_candidate

    return CandidateOut.from_record(get_candidate(storage, study=name, trial_number=trial))


@read.get("/studies/{name}/front")
def front(
    storage: StorageDep,
    name: StudyName,
    device: Annotated[str, Query(min_length=1, max_length=64, description="Device name")],
    max_latency_ms: Annotated[float | None, Query(ge=0, le=1e12, allow_inf_nan=False)] = None,
    min_accuracy: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    max_size_mb: Annotated[float | None, Query(ge=0, le=1e9, allow_inf_nan=False)] = None,
    sort: Literal["latency", "accuracy", "size"] = "latency",
    max_rank: Annotated[
        int | None, Query(ge=0, le=100_000, description="0: the front; omit with all=true")
    ] = 0,
    all_ranks: Annotated[bool, Query(alias="all", description="Include dominated")] = False,
    baselines: Annotated[
        bool, Query(description="Also list the baselines (teacher, int8) when dominated")
    ] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> FrontOut:
    """The Pareto front of a study on one device, filtered, sorted and paged."""
    from paretoedge.storage import get_front, get_measured_latencies

    page = get_front(
        storage,
        study=name,
        device=device,
        max_latency_ms=max_latency_ms,
        min_accuracy=min_accuracy,
        max_size_bytes=None if max_size_mb is None else int(max_size_mb * 1e6),
        sort=sort,
        limit=limit,
        offset=offset,
        max_rank=None if all_ranks else max_rank,
        baselines=baselines,
    )
    measured = get_measured_latencies(
        storage, candidate_ids=[e.candidate.id for e in page.entries], device=device
    )
    return FrontOut.from_page(page, {cid: m.median_ms for cid, m in measured.items()})


@read.get(
    "/studies/{name}/plot",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
    response_model=None,
)
def plot(
    storage: StorageDep,
    name: StudyName,
    device: Annotated[list[str], Query(min_length=1, max_length=8, description="Devices")],
    format: Literal["json", "html"] = "json",
) -> Response:
    """Accuracy vs latency per device (Plotly figure JSON, or a self-contained HTML page)."""
    from paretoedge._plot import front_figure, front_points

    points = front_points(storage, study=name, devices=device, max_points=API_MAX_PLOT_POINTS)
    fig = front_figure(points, title=f"{name}: accuracy vs latency")
    if format == "html":
        return HTMLResponse(fig.to_html(include_plotlyjs=True, full_html=True))
    return Response(fig.to_json(), media_type="application/json")


@read.get("/studies/{name}/job")
def job(jobs: JobsDep, name: StudyName) -> JobOut:
    """The run of a study launched by this server (its process state and log tail)."""
    j = jobs.get(name)
    if j is None:
        raise NotFoundError(f"study {name!r} was not launched by this server")
    return JobOut(
        study=j.study,
        pid=j.process.pid,
        running=j.running,
        returncode=j.process.returncode,
        log=j.tail(),
    )


@write.post("/studies", status_code=status.HTTP_202_ACCEPTED)
def launch(jobs: JobsDep, body: LaunchIn) -> JobOut:
    """Validate a study config and run the search in a background process."""
    from paretoedge.settings import get_settings

    cfg = validate_launch(
        config=body.config,
        bundled=body.bundled,
        overrides=body.overrides,
        name=body.name,
        data_dir=get_settings().data_dir,
    )
    j = jobs.launch(cfg, study=body.name or cfg.name)
    return JobOut(study=j.study, pid=j.process.pid, running=j.running, returncode=None, log="")


@write.post("/studies/{name}/stop")
def stop(jobs: JobsDep, name: StudyName) -> JobOut:
    """Interrupt a launched study (it is marked stopped and can be resumed)."""
    j = jobs.stop(name)
    return JobOut(
        study=j.study,
        pid=j.process.pid,
        running=j.running,
        returncode=j.process.returncode,
        log=j.tail(),
    )
