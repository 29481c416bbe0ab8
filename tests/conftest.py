"""Shared fixtures: offline model hub, a private cache directory, few threads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point PARETOEDGE_HOME at a per-session directory so tests never touch ~/.cache.

    Slow integration tests that need the fine-tuned bundled teacher use the fixture
    ``shared_home`` instead, which survives between runs on the same machine.
    """
    from paretoedge.settings import get_settings

    home = tmp_path_factory.getbasetemp() / "home"
    old = os.environ.get("PARETOEDGE_HOME")
    os.environ["PARETOEDGE_HOME"] = str(home)
    get_settings.cache_clear()
    yield home
    if old is None:
        os.environ.pop("PARETOEDGE_HOME", None)
    else:
        os.environ["PARETOEDGE_HOME"] = old
    get_settings.cache_clear()


@pytest.fixture
def shared_home(monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache directory kept between test runs (fine-tuned teachers take minutes)."""
    from paretoedge.settings import get_settings

    home = Path(os.environ.get("PARETOEDGE_TEST_CACHE", Path.home() / ".cache" / "paretoedge"))
    monkeypatch.setenv("PARETOEDGE_HOME", str(home))
    get_settings.cache_clear()
    return home
