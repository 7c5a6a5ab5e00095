"""Image search with a description (vsearch.search, `filters.description`): only sightings whose joint probability
passes the threshold are candidates, selected inside the index search like the colour filters (a top-k that
non-matching look-alikes would fill still returns the matching sightings), candidates re-ranked by appearance +
weight x joint probability; unknown words refused by the API (400) and the CLI (exit 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.attributes import COLUMNS
from vsearch.config import Settings
from vsearch.describe import parse_description
from vsearch.errors import IndexStateError
from vsearch.search import SearchFilters, query_crop, search

from .conftest import cli_here, small_service

KEY = "investigator-key-0123456789"


def _query(svc) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    """A stored sighting and its crop's bytes (a person crop: taken whole, no detector)."""
    i = int(svc.catalog.sighting_ids("hsv-parts")[0])
    return i, (svc.settings.data_dir / svc.catalog.sighting(i).thumb_path).read_bytes()


def _write(svc, p_female: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    cat = svc.catalog
    ids = cat.sighting_ids("hsv-parts")
    times = cat.times("hsv-parts", ids.tolist())
    rows = []
    for i, p in zip(ids.tolist(), p_female):
        probs = np.full(len(COLUMNS), 0.1, np.float32)
        probs[COLUMNS.index("female")] = p
        rows.append((i, "lobby", times[i], probs))
    cat.put_attributes(svc.attributes.name, rows)


def test_a_description_selects_candidates_inside_the_index_search_and_reranks_them(tmp_path: Path) -> None:
    svc = small_service(tmp_path / "data")
    cat, s = svc.catalog, svc.settings
    qid, data = _query(svc)
    ids = cat.sighting_ids("hsv-parts")
    _, vecs = cat.embeddings(ids)
    cos = vecs @ vecs[list(ids).index(qid)]
    plain = svc.search(data, SearchFilters(top_k=1))
    fetched = s.crops_per_segment * 4  # what a top-1 search takes from the index
    # the "women": the sightings least like the query, none of them among what a plain search fetched
    women = ids[np.argsort(cos)[:6]]
    assert not set(women.tolist()) & {h.sighting.id for h in plain.hits} and len(ids) > fetched + len(women)
    p = np.where(np.isin(ids, women), np.linspace(0.2, 0.99, len(ids)), 0.0005)  # 0.0005 < 0.003: filtered out
    _write(svc, p)
    woman = SearchFilters(top_k=3, description=parse_description("woman"))
    got = svc.search(data, woman)
    assert got.candidates == len(women)  # the index was asked for these only
    assert got.clips and {h.sighting.id for h in got.hits} <= set(women.tolist())
    # re-ranked: each hit's score is its appearance score + weight x its joint probability
    embedder, store = svc._active
    crop = query_crop(_decode(data), svc.detector, s)
    flat = search([crop], woman, embedder, store, s.model_copy(update={"search_attribute_weight": 0.0}),
                  attribute_model=svc.attributes.name)  # fmt: skip
    appearance = {h.sighting.id: h.score for h in flat.hits}
    p_of = dict(zip(ids.tolist(), p))
    for h in got.hits:
        assert h.score == pytest.approx(appearance[h.sighting.id] + s.search_attribute_weight * p_of[h.sighting.id], abs=1e-5)
    # the time window still applies inside the same selection
    ts = sorted(cat.times("hsv-parts", women.tolist()).values())
    narrow = svc.search(data, SearchFilters(from_ts_s=ts[0], to_ts_s=ts[2], description=parse_description("woman")))
    assert narrow.candidates == 3
    svc.close()


def _decode(data: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    svc = small_service(tmp_path_factory.mktemp("attr-search") / "data")
    yield svc
    svc.close()


def test_a_catalog_without_attributes_says_what_to_run(scored) -> None:  # type: ignore[no-untyped-def]
    _, data = _query(scored)
    assert scored.catalog.count_attributes(scored.attributes.name) == 0
    with pytest.raises(IndexStateError, match="reindex-attributes"):
        scored.search(data, SearchFilters(description=parse_description("woman")))


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"description": "bald man"}, "unknown words in the description: 'bald'"),
        ({"description": "woman", "gender": "male"}, "not both"),
        ({"gender": "robot"}, "unknown gender 'robot'"),
        ({"carrying": "umbrella"}, "unknown carried item 'umbrella'"),
        ({"description": "woman in an orange top"}, "'orange'"),
    ],
)
def test_search_api_refuses_a_bad_description(scored, fields: dict[str, str], detail: str) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from api.app import create_app
    from vsearch.config import ApiKey

    _, data = _query(scored)
    s = scored.settings.model_copy(update={"api_keys": [ApiKey(name="ivan", key=KEY, role="investigator")]})
    with TestClient(create_app(s, scored)) as c:
        r = c.post("/search", files={"image": ("q.jpg", data, "image/jpeg")}, data=fields, headers={"X-API-Key": KEY})
    assert r.status_code == 400, r.text
    assert detail in r.json()["detail"]


def test_search_cli_refuses_a_bad_description(scored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, data = _query(scored)
    q = tmp_path / "q.jpg"
    q.write_bytes(data)
    d = str(scored.settings.data_dir)
    for args, detail in ((["--describe", "bald man"], "unknown words in the description: 'bald'"),
                         (["--gender", "robot"], "unknown gender 'robot'")):  # fmt: skip
        bad = cli_here("search", str(q), *args, "--data-dir", d, env={"VSEARCH_EMBEDDER": "hsv-parts"})
        assert bad.returncode == 2 and detail in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_settings_bound_the_threshold() -> None:
    with pytest.raises(ValueError):
        Settings(search_attribute_min_p=1.5)


def test_api_and_cli_search_with_a_description_alike(tmp_path: Path) -> None:
    import json

    from fastapi.testclient import TestClient

    from api.app import create_app
    from vsearch.config import ApiKey

    svc = small_service(tmp_path / "data")
    ids = svc.catalog.sighting_ids("hsv-parts")
    women = set(ids[::7].tolist())
    _write(svc, np.where(np.isin(ids, list(women)), 0.9, 0.0005))
    _, data = _query(svc)
    s = svc.settings.model_copy(update={"api_keys": [ApiKey(name="ivan", key=KEY, role="investigator")]})
    with TestClient(create_app(s, svc)) as c:
        r = c.post("/search", files={"image": ("q.jpg", data, "image/jpeg")}, headers={"X-API-Key": KEY},
                   data={"description": "woman", "top_k": "3"})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["candidates"] == len(women) and body["clips"]
    assert {x["id"] for c in body["clips"] for x in c["sightings"]} <= women
    q = tmp_path / "q.jpg"
    q.write_bytes(data)
    cli = cli_here("search", str(q), "--gender", "female", "--top", "3", "--json", "--data-dir", str(s.data_dir),
                   env={"VSEARCH_EMBEDDER": "hsv-parts"})  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert [c["id"] for c in json.loads(cli.stdout)["clips"]] == [c["id"] for c in body["clips"]]
    cli_entry, api_entry = svc.audit.read()[:2]  # newest first: what each was given is audited
    assert cli_entry["filters"]["gender"] == "female" and "description" not in cli_entry["filters"]
    assert api_entry["filters"]["description"] == "woman" and "gender" not in api_entry["filters"]
    svc.close()
