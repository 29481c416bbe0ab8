"""Ctrl-C held back while a finished trial is being stored, and delivered after it.

Why: a trial's result, device metrics and front ranks are committed in one transaction
near the end of :meth:`~paretoedge.search._runner.SearchRunner.objective`. A
:class:`KeyboardInterrupt` raised after that commit but before the objective returns
(while the in-memory ranking is updated, or the progress display redrawn) made Optuna
fail a trial whose result was stored; recovery then made the candidate row follow its
trial (``failed``), and since only an interrupted *evaluation* is queued again, a stored
result was lost and its front emptied (``paretoedge`` stopped over HTTP lost its only
complete candidate that way). Held back, the interrupt arrives once Optuna has recorded
the trial ``COMPLETE``: the backend raises it between trials
(:meth:`InterruptGuard.deliver`).

Only the main thread can replace Python's SIGINT handler; elsewhere (a worker thread) the
guard does nothing, which is what that thread would see anyway (Python delivers SIGINT to
the main thread). A second SIGINT while one is held is raised at once, so a commit that
hangs (a database gone away) cannot make Ctrl-C unanswerable.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class InterruptGuard:
    """Holds SIGINT back inside :meth:`held` and raises it later, in :meth:`deliver`."""

    def __init__(self) -> None:
        self._pending = False

    @property
    def pending(self) -> bool:
        """Whether an interrupt arrived while held and was not delivered yet."""
        return self._pending

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Record SIGINT instead of raising it until the block ends (main thread only;
        an ignored SIGINT, or a handler installed outside Python, is left alone)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is None or previous == signal.SIG_IGN:
            yield
            return

        def record(signum: int, frame: FrameType | None) -> None:
            if self._pending:  # pressed again: the user will not wait for the commit
                raise KeyboardInterrupt
            self._pending = True

        signal.signal(signal.SIGINT, record)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def deliver(self) -> None:
        """Raise the interrupt held back, if one was.

        Raises:
            KeyboardInterrupt: SIGINT arrived inside :meth:`held` since the last call.
        """
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt
