"""Study runs launched over HTTP: one child process per study, stoppable.

A launched study runs ``paretoedge search`` (a thin wrapper around the Python API,
:func:`paretoedge.create_study` and :meth:`~paretoedge.Study.optimize`) in a child process.
The process boundary is deliberate, not for want of an API: the server stays responsive
while torch trains, a crash of the search (or its memory) cannot take the API down, and
stopping is a SIGINT, which the runner handles like Ctrl-C (the interrupted candidate is
queued again, the study is marked ``stopped`` and can be resumed with ``paretoedge
resume``); a thread in the server could be neither isolated nor interrupted.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paretoedge.errors import ConfigError, ParetoEdgeError
from paretoedge.search._names import check_study_name, study_dirname

_log = logging.getLogger(__name__)

#: Seconds a stopped run gets to finish its bookkeeping before it is killed.
STOP_GRACE_S = 30.0


class ConflictError(ParetoEdgeError):
    """The request conflicts with the state of a study run (HTTP 409)."""


@dataclass
class Job:
    study: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class JobManager:
    """The study processes this server started (thread-safe)."""

    def __init__(self, storage_url: str, workdir: Path) -> None:
        self.storage_url = storage_url
        self.workdir = workdir
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, study: str) -> Job | None:
        with self._lock:
            return self._jobs.get(study)

    def launch(self, config: Any, *, study: str) -> Job:
        """Start ``paretoedge search`` on a validated :class:`StudyConfig` as ``study``.

        Raises:
            ConflictError: A run of ``study`` launched here is still going.
        """
        import yaml

        with self._lock:
            old = self._jobs.get(study)
            if old is not None and old.running:
                raise ConflictError(f"study {study!r} is already running (pid {old.process.pid})")
            run_dir = self.workdir / study_dirname(study)
            run_dir.mkdir(parents=True, exist_ok=True)
            cfg_path = run_dir / "study.yaml"
            cfg_path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
            log_path = run_dir / "search.log"
            cmd = [
                sys.executable,
                "-m",
                "paretoedge.cli",
                "search",
                str(cfg_path),
                "--storage",
                self.storage_url,
                "--study",
                study,
                "--no-progress",
            ]
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            job = Job(study=study, process=process, log_path=log_path)
            self._jobs[study] = job
            _log.info("launched study %s (pid %d)", study, process.pid)
            return job

    def stop(self, study: str, *, grace_s: float = STOP_GRACE_S) -> Job:
        """Interrupt the run of ``study`` and wait for it to record ``stopped``.

        Raises:
            ConflictError: ``study`` has no run going in this server.
        """
        job = self.get(study)
        if job is None or not job.running:
            raise ConflictError(
                f"study {study!r} has no run going in this server "
                "(only studies launched through this API can be stopped here)"
            )
        job.process.send_signal(signal.SIGINT)
        try:
            job.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _log.warning("study %s did not stop in %.0fs; killing it", study, grace_s)
            job.process.kill()
            job.process.wait(timeout=10)
            self._mark_stopped(study)
        return job

    def _mark_stopped(self, study: str) -> None:
        from paretoedge.storage import open_storage, set_study_status

        storage = open_storage(self.storage_url)
        try:
            set_study_status(storage, study=study, status="stopped")
        finally:
            storage.close()

    def shutdown(self) -> None:
        """Stop every run still going (the server is exiting)."""
        with self._lock:
            names = [n for n, j in self._jobs.items() if j.running]
        for name in names:
            try:
                self.stop(name, grace_s=10.0)
            except ParetoEdgeError as exc:
                _log.warning("stopping %s: %s", name, exc)


def validate_launch(
    *,
    config: dict[str, Any] | None,
    bundled: str | None,
    overrides: list[str],
    name: str | None = None,
    data_dir: Path | None = None,
) -> Any:
    """The validated :class:`StudyConfig` of a launch request, checked by the same
    validators as ``paretoedge search`` (nothing is stored before they pass).

    A launched study runs on the server, so it may name only bundled tasks and models, or
    files inside ``data_dir`` (the ``PARETOEDGE_DATA_DIR`` setting) when there is one.

    Raises:
        ConfigError: Neither or both of ``config``/``bundled``, an unknown bundled name
            (only bundled names are accepted: never a server-side path), an invalid study
            name, a task or model outside the data directory, or an invalid study
            configuration (the message names the field).
    """
    from paretoedge.search import apply_overrides, bundled_configs, load_config, parse_config

    if name is not None:
        check_study_name(name, field="name")
    if (config is None) == (bundled is None):
        raise ConfigError("config", None, "exactly one of config (a document) or bundled (a name)")
    local_paths = data_dir is not None
    if bundled is not None:
        names = bundled_configs()
        if bundled not in names:
            raise ConfigError("bundled", bundled, names)
        return load_config(bundled, overrides, data_dir=data_dir, local_paths=local_paths)
    assert config is not None
    return parse_config(
        apply_overrides(config, overrides), data_dir=data_dir, local_paths=local_paths
    )
