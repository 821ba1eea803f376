"""Group ids, transactional ids and changelog topic names, in one place (docs/runtime.md)."""

from __future__ import annotations


def group_id(app_id: str, prefix: str, operator: str) -> str:
    """``<app_id>-<prefix><operator>``: one consumer group per operator."""
    return f"{app_id}-{prefix}{operator}"


def changelog_topic(app_id: str, prefix: str, operator: str) -> str:
    """``<prefix><app_id>-<operator>-changelog``: prefixed like every topic of a run."""
    return f"{prefix}{app_id}-{operator}-changelog"


def transactional_id(group: str, worker: str) -> str:
    """``<group>-<worker>``: a restarted worker fences its own zombie and aborts its open
    transaction at once (init_transactions)."""
    return f"{group}-{worker}"
