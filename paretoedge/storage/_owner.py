"""Who runs a trial, and whether that process is still alive, without waiting.

Optuna tells a dead trial from a live one by its heartbeat: a trial whose heartbeat is older
than the grace period is failed. That is the only signal that works across machines, but it
makes ``paretoedge resume`` right after a crash either wait for the grace period or finish the
study with the killed trial still ``RUNNING`` (nobody looks at it again once the budget is
spent). Most kills, though, are of a process on *this* machine, and for those the answer is
immediate: the process either exists or not.

So every trial records its owner (:class:`Owner`): the host key, the process id and the
process's start time. The host key combines the host name, the kernel's boot id and the PID
namespace, so a process id is only ever compared with processes it can actually name (not
after a reboot, not from another container sharing the host name). The start time guards
against a recycled pid. :meth:`Owner.alive` answers ``True``/``False`` for an owner on this
host and ``None`` for one elsewhere, for which callers fall back to Optuna's heartbeat grace.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass

__all__ = ["Owner", "current_owner"]

_MAX_HOST = 255


@functools.cache
def _host_key() -> str:
    host = socket.gethostname() or "localhost"
    parts = [host]
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            parts.append(fh.read().strip())
    except OSError:
        parts.append("-")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("-")
    return "|".join(parts)[:_MAX_HOST]


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), ``None`` if there is no such
    process (or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of proc(5), counted from field 3
    except (IndexError, ValueError):
        return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Owner:
    """The process that runs (or is about to run) a trial.

    Attributes:
        host: Host key (host name, boot id, PID namespace); equal keys mean that ``pid`` can
            be checked from this process.
        pid: Process id on that host.
        started: Start time of the process (clock ticks since boot), or 0 where unknown.
    """

    host: str
    pid: int
    started: int

    def is_local(self) -> bool:
        return self.host == _host_key()

    def alive(self) -> bool | None:
        """``True``/``False`` for an owner on this host, ``None`` for one on another host
        (only its heartbeat can tell; see the module docstring)."""
        if not self.is_local():
            return None
        if self.pid == os.getpid():
            return True
        ticks = _start_ticks(self.pid)
        if ticks is not None:
            return self.started in (0, ticks)
        if os.path.isdir("/proc/self"):
            return False  # /proc works and has no such process
        return _pid_exists(self.pid)  # no /proc (not Linux): the pid alone must do


def current_owner() -> Owner:
    """This process as an :class:`Owner`."""
    pid = os.getpid()
    return Owner(host=_host_key(), pid=pid, started=_start_ticks(pid) or 0)
