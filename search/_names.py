"""Names a study refers to: its own name, its model, its task; and where its files go.

One set of rules shared by the study file, the CLI flags and the HTTP API, so that each
refuses the same names with the same message:

- A **study name** is data, never a path: 1 to :data:`STUDY_NAME_MAX` characters of
  ``[A-Za-z0-9_.-]`` starting with a letter or digit (so never ``.``, ``..``, ``-x`` or
  ``a/b``). Directories named after a study use :func:`study_dirname`, which maps any stored
  name (including names stored before these rules) to one safe path component.
- A **model** is a bundled alias or an existing local Hugging Face directory (it holds a
  ``config.json``), given without ``..`` components.
- A **task** is a bundled task or an existing CSV/JSONL file, without ``..`` components.

With ``data_dir`` (the HTTP API, see :attr:`paretoedge.settings.Settings.data_dir`), a path
must also resolve, symbolic links followed, inside that directory; without one, the API
accepts only bundled names.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from paretoedge.errors import ConfigError

#: Longest study name.
STUDY_NAME_MAX = 100
#: The characters of a study name (the first one a letter or digit).
STUDY_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
STUDY_NAME_ALLOWED = (
    f"1-{STUDY_NAME_MAX} characters of A-Z a-z 0-9 _ . -, starting with a letter or digit"
)
#: Longest model or task path accepted (Linux's PATH_MAX).
PATH_MAX = 4096
#: File types a user task may have (optionally gzipped).
TASK_SUFFIXES = (".csv", ".jsonl", ".json")


def check_study_name(name: object, *, field: str = "name") -> str:
    """``name`` if it is a valid study name.

    Raises:
        ConfigError: Not a string, empty, too long, or with characters outside the set.
    """
    if (
        not isinstance(name, str)
        or len(name) > STUDY_NAME_MAX
        or STUDY_NAME_RE.fullmatch(name) is None
    ):
        raise ConfigError(field, name, STUDY_NAME_ALLOWED)
    return name


def study_dirname(name: str) -> str:
    """One safe path component for the study ``name`` (artifacts, API job directories).

    A valid study name is its own directory name. Any other stored name (kept from before
    the rules, or written to the database by other means) becomes a slug of its safe
    characters plus a hash of the whole name, so two names never share a directory and no
    name can climb out of the parent directory.
    """
    if len(name) <= STUDY_NAME_MAX and STUDY_NAME_RE.fullmatch(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip("._-")[:40] or "study"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{slug}-{digest}"


_NO_LOCAL = " (bundled names only: no data directory is configured, PARETOEDGE_DATA_DIR)"


def _as_path(value: object, field: str, allowed: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, value, allowed)
    if len(value) > PATH_MAX or "\x00" in value:
        raise ConfigError(field, value, allowed)
    path = Path(value).expanduser()
    if ".." in path.parts:
        raise ConfigError(field, value, allowed + " (a path without '..')")
    return path


def _inside(path: Path, data_dir: Path | None, field: str, value: str, allowed: str) -> Path:
    """``path`` resolved; with ``data_dir``, refuse it unless it lies inside."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        raise ConfigError(field, value, allowed + " (the path cannot be resolved)") from None
    if data_dir is not None:
        root = data_dir.expanduser().resolve()
        if not resolved.is_relative_to(root):
            raise ConfigError(field, value, allowed + f" (a path inside {root})")
    return resolved


def check_model(
    model: object, *, field: str = "model", data_dir: Path | None = None, local_paths: bool = True
) -> str:
    """``model`` if it names a bundled model or a local Hugging Face directory.

    Args:
        data_dir: Local directories must lie inside it.
        local_paths: Whether local directories are accepted at all.

    Raises:
        ConfigError: Naming ``field``, the value and the bundled names.
    """
    from paretoedge.models import MODEL_ALIASES

    if isinstance(model, str) and model in MODEL_ALIASES:
        return model
    names = ", ".join(MODEL_ALIASES)
    if not local_paths:
        raise ConfigError(field, model, names + _NO_LOCAL)
    where = f" inside {data_dir}" if data_dir is not None else ""
    allowed = f"{names} or a local Hugging Face directory{where}"
    path = _as_path(model, field, allowed)
    assert isinstance(model, str)
    try:
        ok = path.is_dir() and (path / "config.json").is_file()
    except OSError:
        ok = False
    if not ok:
        raise ConfigError(field, model, allowed + " (with a config.json)")
    _inside(path, data_dir, field, model, allowed)
    return model


def check_task(
    task: object, *, field: str = "task", data_dir: Path | None = None, local_paths: bool = True
) -> str:
    """``task`` if it names a bundled task or a local CSV/JSONL file.

    Args:
        data_dir: Local files must lie inside it.
        local_paths: Whether local files are accepted at all.

    Raises:
        ConfigError: Naming ``field``, the value and the bundled names.
    """
    from paretoedge.tasks import BUNDLED_TASKS

    if isinstance(task, str) and task in BUNDLED_TASKS:
        return task
    names = ", ".join(BUNDLED_TASKS)
    if not local_paths:
        raise ConfigError(field, task, names + _NO_LOCAL)
    where = f" inside {data_dir}" if data_dir is not None else ""
    allowed = f"{names} or a CSV/JSONL file{where}"
    path = _as_path(task, field, allowed)
    assert isinstance(task, str)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in TASK_SUFFIXES:
        raise ConfigError(field, task, allowed + " (.csv, .jsonl, optionally .gz)")
    try:
        ok = path.is_file()
    except OSError:
        ok = False
    if not ok:
        raise ConfigError(field, task, allowed + " (no such file)")
    _inside(path, data_dir, field, task, allowed)
    return task
