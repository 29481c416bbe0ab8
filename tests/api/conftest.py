"""A real ``paretoedge serve`` process on a free loopback port, over a populated database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _query_data import populate  # noqa: E402

TOKEN = "test-token-0123456789abcdef"


@dataclass
class Server:
    url: str
    storage: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, **kwargs)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(storage: str, home: Path, *, token: str | None) -> Server:
    """Start ``paretoedge serve`` and wait until ``/health`` answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PARETOEDGE_API_TOKEN"}
    env["PARETOEDGE_HOME"] = str(home)
    if token is not None:
        env["PARETOEDGE_API_TOKEN"] = token
    log = home / f"server-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "paretoedge.cli", "serve", "--storage", storage,
           "--port", str(port)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return Server(url=url, storage=storage, process=proc, log=log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'pe.db'}"
    populate(url)
    return url


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API with write endpoints enabled (token ``TOKEN``)."""
    s = start_server(db_url, tmp_path_factory.mktemp("home"), token=TOKEN)
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def readonly_server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API started without PARETOEDGE_API_TOKEN: writes disabled."""
    s = start_server(db_url, tmp_path_factory.mktemp("home-ro"), token=None)
    yield s
    stop_server(s)
