"""Search by description: the phrase parser (English, Ukrainian, Russian; unknown words refused), the attribute
heads (checksum, embedder), the attribute table's migration on an existing catalog and its filling from stored
crops, and the ranking with its filters inside the statement (against brute force)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from vsearch.attributes import (
    ATTRIBUTES_G_ALL,
    ATTRIBUTES_MNV2_1400,
    COLUMNS,
    AttributeModel,
    Heads,
    heads_for,
)
from vsearch.catalog.schema import SCHEMA_VERSION
from vsearch.config import Settings
from vsearch.describe import Description, parse_description
from vsearch.errors import IndexStateError, InputError, ModelError, NotFoundError
from vsearch.search import SearchFilters
from vsearch.weights import WeightFile

from .conftest import small_service

PHRASES = [
    ("woman with a backpack, red top, dark trousers",
     {"female": True, "carrying": ("backpack",), "upper": ("red",), "lower": ("black", "blue")}),
    ("man in a white shirt and blue jeans", {"female": False, "upper": ("white",), "lower": ("blue",)}),
    ("girl with long hair in a pink skirt", {"female": True, "long_hair": True, "skirt": True, "lower": ("pink",)}),
    ("old man without a backpack, grey jacket, shorts",
     {"female": False, "age": "old", "not_carrying": ("backpack",), "upper": ("gray",), "short_lower": True}),
    ("Жінка з рюкзаком, червона куртка, темні штани",
     {"female": True, "carrying": ("backpack",), "upper": ("red",), "lower": ("black", "blue")}),
    ("чоловік у білій футболці з сумкою", {"female": False, "carrying": ("bag",), "upper": ("white",)}),
    ("мужчина в черной куртке и синих джинсах", {"female": False, "upper": ("black",), "lower": ("blue",)}),
    ("девушка с сумочкой в жёлтой кофте", {"female": True, "carrying": ("handbag",), "upper": ("yellow",)}),
    ("person in a hat", {"hat": True}),
]  # fmt: skip


@pytest.mark.parametrize(("phrase", "expected"), PHRASES)
def test_phrases_become_attributes(phrase: str, expected: dict[str, object]) -> None:
    assert parse_description(phrase).summary() == expected


REFUSED = [
    ("bald man with a backpack", "unknown words in the description: 'bald'"),
    ("woman, orange top", "unknown words in the description: 'orange'"),
    ("жінка в помаранчевій куртці", "unknown words in the description: 'помаранчевій'"),
    ("man with a moustache and a scarf", "'moustache', 'scarf'"),
    ("woman in red", "colour 'red' names no garment"),
    ("brown jacket", "knows no upper-body colour 'brown'"),
    ("a woman", None),  # fine: one attribute
    ("the person", "says nothing the attribute model knows"),
    ("", "expected a description"),
    ("man woman", "two different females"),
    ("without a jacket", "only bags and hats can be absent"),
    ("long", "'long' / 'short' must be followed"),
]  # fmt: skip


@pytest.mark.parametrize(("phrase", "error"), REFUSED)
def test_unknown_or_contradictory_words_are_refused_by_name(phrase: str, error: str | None) -> None:
    if error is None:
        parse_description(phrase)
        return
    with pytest.raises(InputError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_description(phrase)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"upper": ("orange",)}, "no upper-body colour 'orange'"),
        ({"lower": ("teal",)}, "no lower-body colour 'teal'"),
        ({"carrying": ("suitcase",)}, "unknown carried item 'suitcase'"),
        ({"age": "ancient"}, "unknown age 'ancient'"),
        ({"carrying": ("bag",), "not_carrying": ("bag",)}, "both carried and not carried"),
        ({}, "says nothing"),
    ],
)
def test_options_are_checked(fields: dict[str, object], error: str) -> None:
    with pytest.raises(InputError, match=error):
        Description(**fields)  # type: ignore[arg-type]


def test_heads_refuse_another_embedders_vectors_and_a_changed_file(tmp_path: Path, settings: Settings) -> None:
    assert AttributeModel(settings).weights == heads_for(Settings().embedder) == ATTRIBUTES_G_ALL  # the default's own
    assert AttributeModel(settings).embedder == "reid-g-all"
    assert heads_for("reid-g-all-adapt-1") == ATTRIBUTES_G_ALL  # an adapted model: its crops through the base's copy
    model = AttributeModel(settings, embedder="reid-mnv2-1400")  # a catalog of the previous default keeps its heads
    assert model.embedder == "reid-mnv2-1400"
    with pytest.raises(ModelError, match="reads 'reid-mnv2-1400' embeddings, got 'hsv-parts'"):
        model.from_embeddings(np.zeros((1, 256), np.float32), "hsv-parts")
    p = model.weights.verified_path()
    copy = tmp_path / "heads.npz"
    heads = Heads.load(p)
    Heads(heads.embedder, heads.embedder_sha256, heads.mean, heads.std, heads.w1, heads.b1, heads.w2 * 1.01,
          heads.b2, heads.temperatures).save(copy)  # fmt: skip
    changed = AttributeModel(settings, WeightFile("attributes-mnv2-1400", ATTRIBUTES_MNV2_1400.sha256, path=copy))
    with pytest.raises(ModelError, match="does not match the expected"):
        changed.load()


def test_probabilities_are_probabilities(settings: Settings) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 256)).astype(np.float32)
    p = AttributeModel(settings).from_embeddings(x / np.linalg.norm(x, axis=1, keepdims=True), "reid-g-all")
    assert p.shape == (5, len(COLUMNS)) and np.all((p >= 0) & (p <= 1))
    for group in ("age", "upper", "lower"):
        cols = [i for i, c in enumerate(COLUMNS) if c.startswith(group + "_")]
        assert np.allclose(p[:, cols].sum(1), 1, atol=1e-5)


ATTRIBUTES_MIGRATION = 16  # vsearch/catalog/schema.py


@pytest.fixture(scope="module")
def old_catalog(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The small catalog as a vsearch of the schema before attributes left it, reopened by this one: a database
    made by the migrations before ATTRIBUTES_MIGRATION only, holding the small catalog's footage and sightings."""
    from vsearch.catalog import SQLITE
    from vsearch.catalog.schema import MIGRATIONS

    data = tmp_path_factory.mktemp("attr") / "data"
    small_service(data).close()
    (data / "catalog.sqlite").rename(data / "new.sqlite")
    db = sqlite3.connect(data / "catalog.sqlite")
    for v, _, sql in MIGRATIONS:
        if v < ATTRIBUTES_MIGRATION:
            db.executescript(";".join(SQLITE.ddl(sql)))
    db.execute(f"PRAGMA user_version = {ATTRIBUTES_MIGRATION - 1}")
    db.execute("ATTACH DATABASE ? AS new", (str(data / "new.sqlite"),))
    for table in ("cameras", "videos", "sightings", "track_boxes", "id_buckets", "sighting_log"):
        old = [r[1] for r in db.execute(f"PRAGMA main.table_info({table})")]
        cols = ", ".join(old)
        db.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM new.{table}")
    db.commit()
    db.execute("DETACH DATABASE new")
    db.close()
    (data / "new.sqlite").unlink()
    from vsearch.service import VSearch

    svc = VSearch(Settings(data_dir=data, embedder="hsv-parts"))
    yield svc
    svc.close()


def test_an_existing_catalog_is_migrated_then_filled_from_its_stored_crops(old_catalog) -> None:  # type: ignore[no-untyped-def]
    svc = old_catalog
    n = svc.catalog.count_sightings()
    assert n > 10 and svc.catalog.schema_version == SCHEMA_VERSION and svc.catalog.count_attributes(svc.attributes.name) == 0
    with pytest.raises(IndexStateError, match="run vsearch reindex-attributes"):
        svc.find(parse_description("woman"), SearchFilters())
    report = svc.reindex_attributes()
    # the catalog's embedder (hsv-parts) is not the heads': every crop went through the model's own embedder
    assert (report.scored, report.from_vectors, report.missing_crops) == (n, 0, [])
    assert svc.catalog.count_attributes(svc.attributes.name) == n
    assert svc.reindex_attributes().scored == 0  # nothing left to do
    got = svc.catalog.attributes(svc.catalog.sighting_ids("hsv-parts")[:3].tolist())
    assert len(got) == 3 and all(m == svc.attributes.name for m, _ in got.values())
    result = svc.find(parse_description("man"), SearchFilters(top_k=3))
    assert result.clips and result.without_attributes == 0 and result.candidates == n
    assert all(0 < c.score <= 1 for c in result.clips)
    with pytest.raises(NotFoundError, match="nowhere"):
        svc.find(parse_description("man"), SearchFilters(cameras=("nowhere",)))


def test_filters_apply_inside_the_ranking(tmp_path: Path) -> None:
    """The best-scoring sightings lie outside the window: a top-k taken first and filtered after would return
    nothing; the search returns the window's own best, in the order brute force gives."""
    svc = small_service(tmp_path / "data")
    cat = svc.catalog
    ids = cat.sighting_ids("hsv-parts")
    times = cat.times("hsv-parts", ids.tolist())
    ts = np.array([times[int(i)] for i in ids])
    lo, hi = np.quantile(ts, 0.45), np.quantile(ts, 0.55)
    inside = (ts >= lo) & (ts <= hi)
    rng = np.random.default_rng(1)
    p_female = np.where(inside, rng.uniform(0.01, 0.3, len(ids)), rng.uniform(0.9, 1.0, len(ids)))
    rows = []
    for i, p, t in zip(ids, p_female, ts):
        probs = np.full(len(COLUMNS), 0.1, np.float32)
        probs[COLUMNS.index("female")] = p
        rows.append((int(i), "lobby", float(t), probs))
    cat.put_attributes(svc.attributes.name, rows)
    found, count = cat.find_by_attributes(svc.attributes.name, parse_description("woman").terms(), lo, hi, ["lobby"], 5)
    expected = sorted(zip(-p_female[inside], ids[inside]))[:5]
    assert count == int(inside.sum())
    assert [i for i, _ in found] == [int(i) for _, i in expected]
    assert np.allclose([p for _, p in found], [-q for q, _ in expected], atol=1e-6)
    svc.close()


@pytest.mark.slow
def test_ingest_stores_attributes_from_the_embedding_it_computed(tmp_path: Path) -> None:
    """Real ingest with the default embedder: every sighting gets probabilities, equal to the heads applied to its
    stored embedding (no second model run)."""
    from vsearch.ingest import IngestItem
    from vsearch.service import VSearch
    from vsearch.types import parse_time

    from .conftest import DEMO_START, sample_excerpt

    svc = VSearch(Settings(data_dir=tmp_path / "data"))
    clip = sample_excerpt(tmp_path / "clip.mp4", 12.0)
    assert svc.ingest([IngestItem(clip, "lobby", parse_time(DEMO_START))])[0].status == "ingested"
    ids = svc.catalog.sighting_ids(svc.embedder.name)
    stored = svc.catalog.attributes(ids.tolist())
    assert len(ids) > 0 and set(stored) == set(ids.tolist())
    got, vecs = svc.catalog.embeddings(ids)
    again = svc.attributes.from_embeddings(vecs, svc.embedder.name)
    assert np.allclose(np.stack([stored[int(i)][1] for i in got]), again, atol=1e-6)
    svc.close()


@pytest.fixture(scope="module")
def find_client(old_catalog):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from api.app import create_app
    from vsearch.config import ApiKey

    old_catalog.reindex_attributes()
    s = old_catalog.settings.model_copy(update={"api_keys": [ApiKey(name="ivan", key=KEY, role="investigator")]})
    with TestClient(create_app(s, old_catalog)) as c:
        yield c


KEY = "investigator-key-0123456789"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"description": "bald man"}, 400, "unknown words in the description: 'bald'"),
        ({"description": "woman", "gender": "male"}, 400, "not both"),
        ({"gender": "robot"}, 400, "unknown gender 'robot'"),
        ({"upper": "orange"}, 400, "no upper-body colour 'orange'"),
        ({}, 400, "says nothing"),
        ({"description": "woman", "cameras": ["nowhere"]}, 404, "unknown camera 'nowhere'"),
        ({"description": "woman", "from": "2026-03-02T00:00", "to": "2026-03-01T00:00"}, 400, "ends before it starts"),
        ({"description": "woman", "from": "yesterday"}, 400, "yesterday"),
        ({"description": "woman", "top_k": 0}, 422, None),
        ({"description": "woman", "colour": "red"}, 422, None),
    ],
)
def test_find_api_refuses_bad_input_with_a_reason(find_client, body: dict, status: int, detail: str | None) -> None:  # type: ignore[no-untyped-def]
    r = find_client.post("/find", json=body, headers={"X-API-Key": KEY})
    assert r.status_code == status, r.text
    if detail:
        assert detail in r.json()["detail"]


def test_find_api_and_cli_answer_alike(find_client, old_catalog) -> None:  # type: ignore[no-untyped-def]
    from .conftest import cli_here

    r = find_client.post("/find", json={"description": "man with a bag", "top_k": 3, "cameras": ["lobby"]},
                         headers={"X-API-Key": KEY})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["description"] == {"female": False, "carrying": ["bag"]} and 0 < len(body["clips"]) <= 3
    first = body["clips"][0]  # the same clip shape as /search: the page shows both alike
    assert first["clip_url"] == f"/clips/{first['id']}.mp4" and first["best"]["thumbnail_url"] and first["sightings"]
    data = str(old_catalog.settings.data_dir)
    cli = cli_here("find", "--gender", "male", "--carrying", "bag", "--top", "3", "--json", "--data-dir", data,
                   env={"VSEARCH_EMBEDDER": "hsv-parts"})  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    import json

    assert [c["id"] for c in json.loads(cli.stdout)["clips"]] == [c["id"] for c in body["clips"]]
    bad = cli_here("find", "woman in an orange top", "--data-dir", data, env={"VSEARCH_EMBEDDER": "hsv-parts"})
    assert bad.returncode != 0 and "unknown words in the description: 'orange'" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_retrieval_on_held_out_market_identities(settings: Settings) -> None:
    """Descriptions of 3 attributes (gender, upper and lower colour) made from held-out identities' labels find
    them far above chance among 60 held-out people, through the real embedder and heads (training/eval_attributes
    measures all 151)."""
    from training.datasets import market_files, market_split, read_bgr
    from training.eval_attributes import description_of, joint
    from training.train_attributes import identity_labels

    from .conftest import dataset

    dataset("market1501-train")
    test_ids = market_split()[1][:60]
    files = [c for c in market_files() if c.pid in set(test_ids)]
    files = [c for i, c in enumerate(files) if i % 3 == 0]  # a third of their crops: every identity keeps some
    pids = np.array([c.pid for c in files])
    model = AttributeModel(settings)
    probs = model.from_crops([np.ascontiguousarray(read_bgr(c.path)[:, :, ::-1]) for c in files])
    labels = identity_labels()
    ranks = []
    for pid in sorted(set(pids.tolist())):
        d = description_of(labels[pid], ("gender", "upper", "lower"))
        if d is not None:
            ranks.append(int(np.argmax(pids[np.argsort(-joint(probs, d), kind="stable")] == pid)) + 1)
    n_ids = len(set(pids.tolist()))
    chance = (len(files) + 1) / (len(files) / n_ids + 1)  # a random order's expected first hit
    assert len(ranks) >= 40
    assert np.median(ranks) < chance / 3, (np.median(ranks), chance)


def test_stored_with_their_sightings_ranked_filtered_and_deleted_with_them_on_both_engines(cat) -> None:  # type: ignore[no-untyped-def]
    """SQLite and PostgreSQL: probabilities committed in the sightings' checkpoint, the joint probability ranks
    inside the window and cameras, and deleting the video removes them (ON DELETE CASCADE)."""
    from vsearch.catalog import Checkpoint, NewSighting

    def probs(female: float) -> np.ndarray:
        p = np.full(len(COLUMNS), 0.1, np.float32)
        p[COLUMNS.index("female")] = female
        return p

    v = cat.begin_video("cam-a", "/a.mp4", "a" * 64, 1000.0, 10.0, 100, (64, 64), "e")
    rows = [NewSighting(cam, i, 1000.0 + i, float(i), (0, 0, 1, 1), 0.9, 0.5, "t.jpg", np.ones(4, np.float32) / 2,
                        attributes=probs(f), attribute_model="m")
            for i, (cam, f) in enumerate([("cam-a", 0.9), ("cam-b", 0.95), ("cam-a", 0.2), ("cam-a", 0.6)])]  # fmt: skip
    ids = cat.commit_chunk(v.id, Checkpoint(rows, (), 10.0, 4, True))
    assert cat.count_attributes("m") == 4 and cat.without_attributes("m", 0, 10) == []
    woman = parse_description("woman").terms()
    found, count = cat.find_by_attributes("m", woman, None, None, None, 10)
    assert [i for i, _ in found] == [ids[1], ids[0], ids[3], ids[2]] and count == 4
    assert [round(p, 3) for _, p in found] == [0.95, 0.9, 0.6, 0.2]
    found, count = cat.find_by_attributes("m", woman, 1001.0, 1003.0, ["cam-a"], 10)
    assert [i for i, _ in found] == [ids[3], ids[2]] and count == 2
    man = parse_description("man").terms()
    assert cat.find_by_attributes("m", man, None, None, None, 1)[0][0][0] == ids[2]
    assert cat.find_by_attributes("other-model", woman, None, None, None, 10) == ([], 0)
    cat.delete_video(v.id)
    assert cat.count_attributes("m") == 0
