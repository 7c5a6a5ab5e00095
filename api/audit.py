"""The audit log lives in the library (vsearch.audit), so the CLI's case actions and the API's write one file."""

from __future__ import annotations

from vsearch.audit import AuditLog

__all__ = ["AuditLog"]
