"""Property-based fuzzing of the OpenAPI schema (schemathesis): whatever a client sends, no 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (pip) runs the API fuzz pass")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from api import create_app  # noqa: E402
from vsearch.config import ApiKey, Settings  # noqa: E402

KEY = "fuzz-admin-key-0123456789abc"
_app = None


def app():  # type: ignore[no-untyped-def]
    global _app
    if _app is None:
        import tempfile

        data = tempfile.mkdtemp(prefix="vsearch-fuzz-")
        from vsearch.service import VSearch

        # an empty catalog: the fuzzer exercises validation and error paths; real-data paths are in test_api.py.
        # The service is injected (not owned by the app) because the ASGI loader runs the app's lifespan per call.
        settings = Settings(data_dir=data, api_keys=[ApiKey(name="fuzz", key=KEY, role="admin")], footage_root=data)
        _app = create_app(settings, VSearch(settings))
    return _app


schema = schemathesis.openapi.from_asgi("/openapi.json", app())


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:  # type: ignore[no-untyped-def]
    case.headers = {**(case.headers or {}), "X-API-Key": KEY}
    response = case.call()
    case.validate_response(response, checks=(not_a_server_error,))
