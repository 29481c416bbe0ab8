"""Small closed types shared by every layer (kept here so each is defined once)."""

from __future__ import annotations

from typing import Literal, get_args

#: Whether an objective is minimised or maximised.
Direction = Literal["minimize", "maximize"]
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)
