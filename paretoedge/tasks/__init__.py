"""Tasks: labelled text in a fixed train/validation/test split.

``load_task("sentiment")`` gives the bundled movie-review sentiment task (vaderSentiment's
rated snippets, see ``paretoedge/data/SENTIMENT_DATA.md``); any other argument is a user
CSV or JSONL file with ``text`` and ``label`` columns.
"""

from __future__ import annotations

from paretoedge.tasks._data import BUNDLED_TASKS, SPLITS, Example, TaskData, load_task

__all__ = ["BUNDLED_TASKS", "SPLITS", "Example", "TaskData", "load_task"]
