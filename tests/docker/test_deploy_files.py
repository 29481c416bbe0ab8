"""The deployment files: lint, parse, pinning and secrets (no Docker engine needed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SECRETS = {
    "PARETOEDGE_DB_PASSWORD": "pw",
    "RAY_AUTH_TOKEN": "tok",
    "PARETOEDGE_API_TOKEN": "api",
}


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        [_tool("hadolint"), str(DOCKER / "Dockerfile")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_yamllint_finds_nothing() -> None:
    out = subprocess.run(
        [_tool("yamllint"), "-c", str(DOCKER / ".yamllint.yaml"), str(DOCKER)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _compose(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [_tool("docker-compose"), "-f", str(DOCKER / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env={**base, **env},
    )


def test_compose_resolves_with_secrets_from_the_environment() -> None:
    out = _compose(SECRETS)
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    services = cfg["services"]
    assert {"postgres", "ray-head", "ray-worker", "api"} <= services.keys()
    head = services["ray-head"]
    assert "--port=6380" in head["command"]
    assert services["ray-worker"]["environment"]["RAY_AUTH_TOKEN"] == "tok"
    assert "RAY_AUTH_TOKEN" not in services["api"]["environment"]
    assert services["api"]["ports"][0].startswith("127.0.0.1:")
    assert ":pw@postgres:" in services["api"]["environment"]["PARETOEDGE_STORAGE"]


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_a_secret(missing: str) -> None:
    out = _compose({k: v for k, v in SECRETS.items() if k != missing})
    assert out.returncode != 0
    assert missing in out.stderr


def test_no_secret_values_in_the_files() -> None:
    text = (
        "\n".join(p.read_text() for p in [*DOCKER.rglob("*.yml"), *DOCKER.rglob("*.yaml")])
        + (DOCKER / "Dockerfile").read_text()
    )
    keys = 0
    for line in text.splitlines():
        m = re.match(r'\s*([A-Z_]*(?:PASSWORD|TOKEN)(?:_[A-Z_]*)?)\s*[:=]\s*"?([^"\s#]*)', line)
        if m:
            keys += 1
            value = m.group(2)
            assert value.startswith("${") or value == "token", line
    assert keys >= 3  # POSTGRES_PASSWORD, RAY_AUTH_TOKEN, PARETOEDGE_API_TOKEN


def test_image_is_non_root_and_takes_the_cpu_torch_wheel() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "download.pytorch.org/whl/cpu" in text and "torch==2.13.0" in text
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", text, flags=re.M)
    assert re.search(r"PYTHON_IMAGE=python:3\.11\.\d+-slim", text)


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_every_runtime_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("search", "postgres", "ray", "api"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    pins = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[name.lower().replace("_", "-")] = version
    missing = sorted(wanted - pins.keys())
    assert not missing, f"unpinned runtime dependencies: {missing}"
    assert pins["torch"].startswith("2.13.0")


def test_kuberay_manifests_match_the_crds() -> None:
    crds = os.environ.get("KUBERAY_CRDS")
    if not crds:
        pytest.skip("set KUBERAY_CRDS to a directory with KubeRay's ray.io_*.yaml CRDs")
    out = subprocess.run(
        [sys.executable, str(DOCKER / "k8s" / "validate.py"), crds],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 ray.io documents checked, 0 problems" in out.stdout
