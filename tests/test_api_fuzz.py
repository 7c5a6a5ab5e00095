"""Property-based fuzzing of the OpenAPI schema (schemathesis): whatever a client sends, no 5xx."""

from __future__ import annotations

import pytest
import schemathesis  # a dev dependency: the fuzz pass must run, never skip
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api import create_app  # noqa: E402
from vsearch.config import ApiKey, Settings  # noqa: E402

KEY = "fuzz-admin-key-0123456789abc"
INVESTIGATOR = "fuzz-investigator-key-0123456"
_app = None


def app():  # type: ignore[no-untyped-def]
    global _app
    if _app is None:
        import tempfile

        data = tempfile.mkdtemp(prefix="vsearch-fuzz-")
        from vsearch.service import VSearch

        # an empty catalog: the fuzzer exercises validation and error paths; real-data paths are in test_api.py.
        # The service is injected (not owned by the app) because the ASGI loader runs the app's lifespan per call.
        keys = [ApiKey(name="fuzz", key=KEY, role="admin"), ApiKey(name="inv", key=INVESTIGATOR, role="investigator")]
        settings = Settings(data_dir=data, api_keys=keys, footage_root=data)
        _app = create_app(settings, VSearch(settings))
    return _app


schema = schemathesis.openapi.from_asgi("/openapi.json", app())


@pytest.mark.slow
@pytest.mark.parametrize("key", [KEY, INVESTIGATOR, None], ids=["admin", "investigator", "no-key"])
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_one_error_schema(case, key: str | None) -> None:  # type: ignore[no-untyped-def]
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
    case.headers = {**headers, "X-API-Key": key} if key else headers
    response = case.call()
    case.validate_response(response, checks=(not_a_server_error,))
    if response.status_code >= 400:  # every error is {"detail": "<reason>"}
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], body
