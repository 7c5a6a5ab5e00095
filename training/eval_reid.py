"""Re-ID accuracy table: every embedder on identity-disjoint folds of PKU-Reid (cross-camera protocol), with the
learned model evaluated only on identities it was not trained on.

    python -m training.eval_reid        # writes training/results/reid_eval.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info, print_table, write_json
from training.datasets import PKU, convert_pku, pku_fold
from vsearch.config import PROJECT_ROOT, Settings
from vsearch.embed import EMBEDDERS, OnnxEmbedder, make_embedder
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    result = run()
    print_table([{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in result["rows"]], "Re-ID, cross-camera (camera 1 queries camera 2)")
    summary = summarise(result["rows"])
    print_table(summary, "\nMean over identity-disjoint folds (11 identities each)")
    payload = {"benchmark": "reid", "machine": machine_info(["torch", "onnxruntime"]), "summary": summary, **result}
    write_json("reid_eval", payload, args.out or RESULTS)
    return payload


if __name__ == "__main__":
    main()
