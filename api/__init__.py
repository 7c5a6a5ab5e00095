"""vsearch's REST API and investigators' web page: a thin FastAPI shell over vsearch.service.VSearch."""

from __future__ import annotations

from api.app import create_app

__all__ = ["create_app"]
