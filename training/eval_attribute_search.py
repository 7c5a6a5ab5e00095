"""Image search with a description on the 151 held-out Market identities: does the description's joint probability
help as a filter (only sightings with joint >= t are candidates) or as a re-ranking (appearance + w * joint)?

Queries: every held-out crop; gallery: the held-out crops of other cameras (Market's protocol: a person's crops
from the query's own camera are left out), embedded by the default embedder (reid-g-all) with its heads
(attributes-g-all). The description is made from the query identity's labels (2, 3 or 4 attributes, as
training/eval_attributes.py). Rank-1 and mAP count a true match the filter removes as missed. The filter's
"recall" is the share of true gallery matches whose joint probability passes it, "kept" the share of the gallery.
Re-ranking weights are chosen on the even-numbered identities and reported on the odd ones.

    python -m training.attr_features --embedder reid-g-all     # once
    python -m training.eval_attribute_search --json training/results/attributes/image_search.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.cache import CACHE_DIR
from training.datasets import market_split
from training.eval_attributes import SETS, description_of, joint, publish
from training.train_attributes import identity_labels
from vsearch.attributes import ATTRIBUTES_G_ALL, Heads

THRESHOLDS = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)
WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)
FILTER = 0.003  # the shipped threshold (Settings.search_attribute_min_p)


def rank1_ap(scores: NDArray[np.float32], good: NDArray[np.bool_], n_good: int) -> tuple[float, float]:
    """Rank-1 and average precision of one query over its (already filtered) gallery; `n_good` counts every true
    match, including those the filter removed (they are missed)."""
    if n_good == 0 or not good.any():
        return 0.0, 0.0
    hit = good[np.argsort(-scores, kind="stable")]
    pos = np.flatnonzero(hit) + 1
    return float(hit[0]), float((np.arange(1, len(pos) + 1) / pos).sum() / n_good)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=Path, default=CACHE_DIR / "attr-reid-g-all.npz")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    feats = np.load(args.features)
    _, test_ids = market_split()
    m = np.isin(feats["pids"], test_ids)
    pids, cams, emb = feats["pids"][m], feats["cams"][m], feats["emb"][m].astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    probs = Heads.load(ATTRIBUTES_G_ALL.verified_path()).predict(emb)
    labels = identity_labels()
    sim = emb @ emb.T
    record: dict[str, Any] = {}
    rows = []
    for n, keys in SETS.items():
        descs = {pid: description_of(labels[pid], keys) for pid in test_ids}
        joints = {pid: joint(probs, d) for pid, d in descs.items() if d is not None}
        res: dict[str, list[tuple[float, float]]] = {}
        recall: dict[float, list[float]] = {t: [] for t in THRESHOLDS}
        kept: dict[float, list[float]] = {t: [] for t in THRESHOLDS}
        split: list[int] = []
        for q in range(len(pids)):
            pid = int(pids[q])
            if pid not in joints:
                continue
            split.append(pid % 2)
            gal = ~((pids == pid) & (cams == cams[q]))
            good = (pids == pid) & gal
            ng = int(good.sum())
            jp = joints[pid]
            for t in THRESHOLDS:
                ok = gal & (jp >= t)
                res.setdefault(f"filter {t}", []).append(rank1_ap(sim[q][ok], good[ok], ng))
                recall[t].append(float((good & ok).sum() / max(ng, 1)))
                kept[t].append(float(ok.sum() / gal.sum()))
            for w in WEIGHTS:
                res.setdefault(f"rerank {w}", []).append(rank1_ap(sim[q][gal] + w * jp[gal], good[gal], ng))
                ok = gal & (jp >= FILTER)
                res.setdefault(f"filter {FILTER} + rerank {w}", []).append(
                    rank1_ap(sim[q][ok] + w * jp[ok], good[ok], ng))
        half = np.array(split)
        r: dict[str, Any] = {"attributes": list(keys), "queries": len(split), "gallery_crops": int(len(pids))}
        for name, vals in res.items():
            a = np.array(vals)
            r[name] = {"rank1": float(a[:, 0].mean()), "mAP": float(a[:, 1].mean()),
                       "rank1_even": float(a[half == 0, 0].mean()), "mAP_even": float(a[half == 0, 1].mean()),
                       "rank1_odd": float(a[half == 1, 0].mean()), "mAP_odd": float(a[half == 1, 1].mean())}  # fmt: skip
            if name.startswith("filter") and "rerank" not in name:
                t = float(name.split()[1])
                r[name]["recall"] = float(np.mean(recall[t]))
                r[name]["kept"] = float(np.mean(kept[t]))
        best = max((k for k in res if k.startswith("rerank")), key=lambda k: r[k]["mAP_even"])
        r["filter_rerank_chosen_on_even"] = max((k for k in res if "+ rerank" in k), key=lambda k: r[k]["mAP_even"])
        r["rerank_chosen_on_even"] = best
        record[f"{n}_attributes"] = r
        for name in res:
            x = r[name]
            rows.append({"attributes": "+".join(keys), "method": name, "rank-1 (%)": round(100 * x["rank1"], 1),
                         "mAP (%)": round(100 * x["mAP"], 1), "rank-1 odd (%)": round(100 * x["rank1_odd"], 1),
                         "mAP odd (%)": round(100 * x["mAP_odd"], 1),
                         "recall (%)": round(100 * x["recall"], 1) if "recall" in x else "",
                         "kept (%)": round(100 * x["kept"], 1) if "kept" in x else ""})  # fmt: skip
    publish(rows, "image search with a description, 151 held-out Market identities (reid-g-all)", record, args.json,
            __doc__)  # fmt: skip


if __name__ == "__main__":
    main()
