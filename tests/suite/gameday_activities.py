"""Harmless Chaos Toolkit activities for the game-day tests: each records that it ran."""

from __future__ import annotations

CALLS: list[str] = []


def act(label: str) -> str:
    CALLS.append(label)
    return label


def undo() -> None:
    CALLS.append("rollback")


def healthy() -> bool:
    return True
