"""Retrieval by description on the 151 held-out Market identities: descriptions made from each identity's labels
(2, 3 and 4 attributes), ranked by the shipped heads' joint probability vs today's colour filter (vsearch.colors
names, no ranking inside the filter).

Gallery: every crop of the held-out identities. For each identity and description: the rank of its first crop
(1 = top), precision at 10 counting its own crops ("same person"), and precision at 10 counting any crop whose
identity's labels fit the description ("fits"). The colour filter returns its matches in a seeded random order
(it has no score); an identity none of whose crops passes it is "not found".

    python -m training.attr_features --embedder reid-mnv2-1400     # once
    python -m training.eval_attributes --json training/results/attributes/retrieval.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import machine_info, print_table, write_json
from training.cache import CACHE_DIR
from training.datasets import MARKET, market_split, read_bgr
from training.train_attributes import identity_labels
from vsearch.attributes import BINARY, COLUMNS, LOWER_COLORS, UPPER_COLORS, Heads
from vsearch.describe import Description

NB = len(BINARY)
SETS = {2: ("gender", "upper"), 3: ("gender", "upper", "lower"), 4: ("gender", "upper", "lower", "backpack")}


def description_of(lab: NDArray[np.int64], keys: tuple[str, ...]) -> Description | None:
    """The description of an identity from its labels (None when a colour it needs is unlabelled)."""
    f: dict[str, Any] = {}
    for k in keys:
        if k == "gender":
            f["female"] = bool(lab[0])
        elif k == "backpack":
            f["carrying" if lab[6] else "not_carrying"] = ("backpack",)
        else:
            c = lab[NB + (1 if k == "upper" else 2)]
            if c < 0:
                return None
            f[k] = ((UPPER_COLORS if k == "upper" else LOWER_COLORS)[c],)
    return Description(**f)


def joint(p: NDArray[np.float32], d: Description) -> NDArray[np.float32]:
    """The joint probability the catalog's statement computes (vsearch.catalog.attributes.Term.sql), in numpy."""
    out = np.ones(len(p), np.float32)
    for t in d.terms():
        s = p[:, [COLUMNS.index(c) for c in t.columns]].sum(1)
        out *= 1 - s if t.negated else s
    return out


def fits(lab: NDArray[np.int64], d: Description) -> bool:
    """Whether an identity's labels satisfy a description."""
    ok = d.female is None or bool(lab[0]) == d.female
    ok &= all(lab[6] for _ in d.carrying) and not any(lab[6] for _ in d.not_carrying)
    ok &= not d.upper or (lab[NB + 1] >= 0 and UPPER_COLORS[lab[NB + 1]] in d.upper)
    ok &= not d.lower or (lab[NB + 2] >= 0 and LOWER_COLORS[lab[NB + 2]] in d.lower)
    return bool(ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", default="reid-mnv2-1400")
    ap.add_argument("--heads", type=Path, default=Path("models/attributes/attributes-mnv2-1400.npz"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from vsearch.colors import name_colors

    feats = np.load(CACHE_DIR / f"attr-{args.embedder}.npz")
    _, test_ids = market_split()
    m = np.isin(feats["pids"], test_ids)
    pids, files = feats["pids"][m], feats["files"][m]
    probs = Heads.load(args.heads).predict(feats["emb"][m].astype(np.float32))
    labels = identity_labels()
    names = [name_colors(read_bgr(MARKET / "bounding_box_train" / str(f))[:, :, ::-1].copy()) for f in files]
    upper_name = np.array([u.replace("grey", "gray") for u, _ in names])
    lower_name = np.array([lo.replace("grey", "gray") for _, lo in names])
    rng = np.random.default_rng(0)
    rows, record = [], {}
    for n, keys in SETS.items():
        res: dict[str, list[float]] = {k: [] for k in ("rank_heads", "p10_same_heads", "p10_fits_heads",
                                                       "rank_filter", "p10_same_filter", "p10_fits_filter")}  # fmt: skip
        found_filter, queries = 0, 0
        for pid in test_ids:
            d = description_of(labels[pid], keys)
            if d is None:
                continue
            queries += 1
            ok_fit = np.array([fits(labels[int(q)], d) for q in pids])
            order = np.argsort(-joint(probs, d), kind="stable")
            same = pids[order] == pid
            res["rank_heads"].append(int(np.argmax(same)) + 1)
            res["p10_same_heads"].append(float(same[:10].mean()))
            res["p10_fits_heads"].append(float(ok_fit[order][:10].mean()))
            passed = np.ones(len(pids), bool)  # today's filter: the colour names only (no gender, no bags)
            if d.upper:
                passed &= upper_name == d.upper[0]
            if d.lower:
                passed &= lower_name == d.lower[0]
            cand = rng.permutation(np.flatnonzero(passed))
            hit = pids[cand] == pid
            if hit.any():
                found_filter += 1
                res["rank_filter"].append(int(np.argmax(hit)) + 1)
            res["p10_same_filter"].append(float(hit[:10].mean()) if len(cand) else 0.0)
            res["p10_fits_filter"].append(float(ok_fit[cand][:10].mean()) if len(cand) else 0.0)
        r: dict[str, Any] = {"attributes": list(keys), "queries": queries, "gallery_crops": int(len(pids)),
             "heads_median_rank": float(np.median(res["rank_heads"])), "heads_mean_rank": float(np.mean(res["rank_heads"])),
             "heads_found_in_top10": float(np.mean(np.array(res["rank_heads"]) <= 10)),
             "heads_p10_same_person": float(np.mean(res["p10_same_heads"])),
             "heads_p10_fits_description": float(np.mean(res["p10_fits_heads"])),
             "filter_found": found_filter / queries,
             "filter_median_rank_when_found": float(np.median(res["rank_filter"])) if res["rank_filter"] else None,
             "filter_found_in_top10": float(np.mean(np.array(res["rank_filter"]) <= 10)) * found_filter / queries
             if res["rank_filter"] else 0.0,
             "filter_p10_same_person": float(np.mean(res["p10_same_filter"])),
             "filter_p10_fits_description": float(np.mean(res["p10_fits_filter"]))}  # fmt: skip
        record[f"{n}_attributes"] = r
        rows.append({"attributes": "+".join(keys), "queries": queries,
                     "heads: median rank": r["heads_median_rank"], "heads: in top 10 (%)": round(100 * r["heads_found_in_top10"], 1),
                     "heads: P@10 same (%)": round(100 * r["heads_p10_same_person"], 1),
                     "heads: P@10 fits (%)": round(100 * r["heads_p10_fits_description"], 1),
                     "filter: found (%)": round(100 * r["filter_found"], 1),
                     "filter: median rank if found": r["filter_median_rank_when_found"],
                     "filter: in top 10 (%)": round(100 * r["filter_found_in_top10"], 1),
                     "filter: P@10 same (%)": round(100 * r["filter_p10_same_person"], 1),
                     "filter: P@10 fits (%)": round(100 * r["filter_p10_fits_description"], 1)})  # fmt: skip
    publish(rows, "retrieval by description, 151 held-out Market identities", record, args.json, __doc__)


def publish(rows: list[dict[str, Any]], title: str, record: dict[str, Any], path: Path | None, doc: str | None) -> None:
    """Print the table; write the record (with the machine) to `path` when given."""
    print_table(rows, title)
    if path:
        write_json(path.stem, {"what": (doc or "").splitlines()[0], "results": record, "machine": machine_info()},
                   path.parent)  # fmt: skip


if __name__ == "__main__":
    main()
