"""Moved to ``core.identity``; these names stay importable from here for existing callers."""

from core.identity.tokens import InvalidToken, issue_token

__all__ = ["InvalidToken", "issue_token"]
