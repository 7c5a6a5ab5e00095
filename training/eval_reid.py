"""Re-ID accuracy tables, cross-camera (camera 1 queries camera 2), learned models scored only on people they
were not trained on.

    python -m training.eval_reid        # PKU folds: every embedder, each fold model on its fold -> reid_eval.json
    python -m training.eval_reid --transfer --embedder reid-mnv2 --onnx run.onnx --json out.json
        # transfer sets: all 44 PKU ids, the held-out CUHK01 and CUHK03 ids (training.datasets.cuhk_split), and
        # the four PKU folds, for registered embedders and model files
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info, print_table, write_json
from training.datasets import (
    CUHK01,
    CUHK03,
    PKU,
    convert_market,
    convert_pku,
    convert_two_camera,
    cuhk_split,
    market_split,
    pku_fold,
)
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.embed import EMBEDDERS, Embedder, OnnxEmbedder, make_embedder
from vsearch.evaluate import evaluate_folder

RESULTS = PROJECT_ROOT / "training" / "results"


def onnx_embedder(path: Path, name: str | None = None) -> OnnxEmbedder:
    """An embedder over a trained model file (256-d, 256x128 input), named after the file unless told."""
    return OnnxEmbedder(name or path.stem, 256, lambda: path, (128, 256))


def run() -> dict[str, Any]:
    rows = []
    baselines = [n for n in ("mobilenetv2-imagenet", "hsv-parts") if n in EMBEDDERS]
    with tempfile.TemporaryDirectory() as tmp:
        sets: dict[str, tuple[list[int] | None, int | None]] = {"pku-all-44-ids": (None, None)}
        for f in range(4):
            sets[f"pku-fold{f}-11-ids"] = (pku_fold(f), f)
        for name, (ids, fold) in sets.items():
            folder = Path(tmp) / name
            convert_pku(PKU, folder, ids)
            for b in baselines:
                rows.append({"set": name, **evaluate_folder(folder, make_embedder(Settings(embedder=b)))})
            record = RESULTS / "reid" / f"cv_fold{fold}.json" if fold is not None else None
            if record is not None and record.exists():
                rec = json.loads(record.read_text())
                assert sorted(rec["held_out_ids"]) == ids, "fold record does not match the fold's identities"
                onnx = PROJECT_ROOT / rec["onnx"]["path"] if "onnx" in rec else None
                if onnx is not None and onnx.exists():
                    rows.append({"set": name, **evaluate_folder(folder, onnx_embedder(onnx))})
                else:  # the fold's own evaluation, done by the training script on the same protocol
                    h = rec["held_out"]
                    rows.append({"set": name, "embedder": f"reid-mnv2 (fold {fold} model)", "dataset": name, **h})
    for r in rows:
        r.pop("dataset", None)
        r.pop("gallery", None)
    return {"rows": rows}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over the folds that exist for every embedder."""
    out = []
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["set"].startswith("pku-fold"):
            by.setdefault(r["embedder"].split(" (")[0].replace("-fold1", ""), []).append(r)
    for emb, rs in by.items():
        out.append({"embedder": emb, "folds": len(rs),
                    "rank_1_mean": round(float(np.mean([r["rank_1"] for r in rs])), 4),
                    "rank_1_min": round(float(np.min([r["rank_1"] for r in rs])), 4),
                    "rank_1_max": round(float(np.max([r["rank_1"] for r in rs])), 4),
                    "mAP_mean": round(float(np.mean([r["mAP"] for r in rs])), 4)})  # fmt: skip
    return out


def transfer_sets(root: Path) -> dict[str, Path]:
    """Write the transfer sets under `root` in the Market layout; {set name: folder}."""
    sets = {"pku-all-44-ids": root / "pku-all-44-ids"}
    convert_pku(PKU, sets["pku-all-44-ids"])
    for name, src in (("cuhk01-test-100-ids", CUHK01), ("cuhk03-test-100-ids", CUHK03)):
        sets[name] = root / name
        convert_two_camera(src, sets[name], cuhk_split(src)[1])
    sets["market-test-151-ids"] = root / "market-test-151-ids"
    convert_market(sets["market-test-151-ids"], market_split()[1])
    for k in range(4):
        sets[f"pku-fold{k}-11-ids"] = root / f"pku-fold{k}-11-ids"
        convert_pku(PKU, sets[f"pku-fold{k}-11-ids"], pku_fold(k))
    return sets


def transfer(embedders: list[Embedder]) -> dict[str, Any]:
    """Every embedder on every transfer set; rows of rank-1/5/10 and mAP (fractions)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in transfer_sets(Path(tmp)).items():
            for e in embedders:
                r = evaluate_folder(folder, e)
                rows.append({"set": name, "embedder": e.name, **{k: round(r[k], 4) if isinstance(r[k], float) else r[k]
                             for k in ("rank_1", "rank_5", "rank_10", "mAP", "queries", "gallery")}})  # fmt: skip
    return {"benchmark": "reid-transfer", "machine": machine_info(["torch", "onnxruntime"]), "rows": rows}


def _embed_chunks(e: Embedder, chunks: list[list[np.ndarray]]) -> None:
    for c in chunks:
        e.embed(c)


def speed(embedders: list[Embedder], n: int = 64, repeats: int = 5) -> dict[str, Any]:
    """ms per crop of each embedder (ONNX Runtime, this machine) on `n` PKU crops at batch 1 and 16, side by
    side in one run; warm-up discarded, median of `repeats`."""
    from functools import partial

    from benchmarks.common import time_calls
    from training.datasets import read_bgr

    paths = sorted(p for p in PKU.rglob("*.png") if not {"query", "gallery"} & set(p.parts))[:n]
    crops = [read_bgr(p)[:, :, ::-1].copy() for p in paths]
    rows = []
    for e in embedders:
        for batch in (1, 16):
            chunks = [crops[i : i + batch] for i in range(0, n, batch)]
            ms = time_calls(partial(_embed_chunks, e, chunks), repeats)
            rows.append({"embedder": e.name, "batch": batch, "ms_per_crop": round(float(np.median(ms)) / n, 3)})
    return {"benchmark": "reid-embedder-speed", "machine": machine_info(["onnxruntime"]), "crops": n, "rows": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--transfer", action="store_true", help="score on the transfer sets instead of the fold table")
    ap.add_argument("--embedder", action="append", default=[], help="registered embedder name (repeatable)")
    ap.add_argument("--onnx", type=Path, action="append", default=[], help="trained model file (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="where --transfer writes its rows")
    ap.add_argument("--speed", action="store_true", help="time the given embedders (ms per crop) instead")
    args = ap.parse_args(argv)
    if args.transfer or args.speed:
        embs = [make_embedder(Settings(embedder=n)) for n in args.embedder] + [onnx_embedder(p) for p in args.onnx]
        out = speed(embs) if args.speed else transfer(embs)
        print_table(out["rows"], "ms per crop" if args.speed else "Re-ID transfer, cross-camera (camera 1 queries camera 2)")
        if args.json:
            write_json(args.json.stem, out, args.json.parent)
        return out
    result = run()
    print_table([{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in result["rows"]], "Re-ID, cross-camera (camera 1 queries camera 2)")
    summary = summarise(result["rows"])
    print_table(summary, "\nMean over identity-disjoint folds (11 identities each)")
    payload = {"benchmark": "reid", "machine": machine_info(["torch", "onnxruntime"]), "summary": summary, **result}
    write_json("reid_eval", payload, args.out or RESULTS)
    return payload


if __name__ == "__main__":
    main()
