"""Train attribute heads on frozen re-ID features of Market-1501 (training.attr_features), calibrate them and score
them on the 151 held-out identities of `training.datasets.market_split`.

Identity-disjoint throughout: the 600 training identities are split again (seeded) into 500 that fit the heads and
100 that fit one temperature per attribute (calibration) and choose nothing else; the 151 held-out identities are
scored once. Compared side by side: heads on (a) the 256-d embedding the catalog stores, (b) the backbone's pooled
feature map (3 x 1280), linear and one hidden layer; and (c) the pose-free colour names of vsearch.colors for the
upper / lower colour. Labels are per identity, so every crop of a person carries its person's labels; accuracies
are per crop.

    python -m training.attr_features --embedder reid-mnv2-1400      # once, ~2 min
    python -m training.train_attributes --json training/results/attributes/mnv2_1400.json \
        --save models/attributes/attributes-mnv2-1400.npz
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import machine_info, print_table, write_json
from training.cache import CACHE_DIR
from training.datasets import MARKET, market_split, read_bgr
from vsearch.attributes import BINARY, COLUMNS, GROUPS, N_OUT, Heads, group_slice, probabilities

N_CALIBRATION_IDS = 100


def identity_labels() -> dict[int, NDArray[np.int64]]:
    """Per identity: one label per binary attribute (0/1) then per group (class index, -1 when none is marked)."""
    out: dict[int, NDArray[np.int64]] = {}
    with open(MARKET / "attributes.csv") as f:
        for r in csv.DictReader(f):
            lab = [int(int(r[col]) == yes) for _, col, yes in BINARY]
            lab.append(int(r["age"]) - 1)
            for prefix, (_, classes) in zip(("up", "down"), GROUPS[1:]):
                marked = [i for i, c in enumerate(classes) if r[prefix + c] == "2"]
                lab.append(marked[0] if len(marked) == 1 else -1)
            out[int(r["identity"])] = np.array(lab, np.int64)
    return out


def fit(x: NDArray[np.float32], y: NDArray[np.int64], hidden: int, epochs: int, seed: int) -> Heads:
    """Heads (temperatures 1) fitted by full-batch Adam: BCE per binary attribute, cross-entropy per group."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(y)
    d = x.shape[1]
    layers: list[torch.nn.Module] = [torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.3)] if hidden else []
    out = torch.nn.Linear(hidden or d, N_OUT)
    net = torch.nn.Sequential(torch.nn.Dropout(0.2), *layers, out)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    nb = len(BINARY)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt), generator=gen).split(256):
            z, t = net(xt[idx]), yt[idx]
            loss = F.binary_cross_entropy_with_logits(z[:, :nb], t[:, :nb].float())
            for j, (name, _) in enumerate(GROUPS):
                loss = loss + F.cross_entropy(z[:, group_slice(name)], t[:, nb + j], ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    w = [m.weight.detach().numpy().T.copy() for m in lin]
    b = [m.bias.detach().numpy().copy() for m in lin]
    if not hidden:
        w, b = [np.zeros((0, 0), np.float32), *w], [np.zeros(0, np.float32), *b]
    ones = np.ones(nb + len(GROUPS), np.float32)
    return Heads("", "", mean.astype(np.float32), std.astype(np.float32), w[0], b[0], w[1], b[1], ones)


def logits(h: Heads, x: NDArray[np.float32]) -> NDArray[np.float32]:
    z = (x - h.mean) / h.std
    if h.w1.size:
        z = np.maximum(z @ h.w1 + h.b1, 0.0)
    return (z @ h.w2 + h.b2).astype(np.float32)


def calibrate(z: NDArray[np.float32], y: NDArray[np.int64]) -> NDArray[np.float32]:
    """One temperature per binary attribute and per group minimising the calibration crops' log-loss (grid)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8), 60)).astype(np.float32)
    nb = len(BINARY)
    temps = np.ones(nb + len(GROUPS), np.float32)
    for j in range(nb + len(GROUPS)):
        best = np.inf
        for t in grid:
            trial = temps.copy()
            trial[j] = t
            p = probabilities(z, trial)
            nll = nll_of(p, y, j)
            if nll < best:
                best, temps[j] = nll, t
    return temps


def nll_of(p: NDArray[np.float32], y: NDArray[np.int64], j: int) -> float:
    nb = len(BINARY)
    if j < nb:
        q = np.clip(p[:, j], 1e-6, 1 - 1e-6)
        return float(-np.mean(y[:, j] * np.log(q) + (1 - y[:, j]) * np.log(1 - q)))
    s = group_slice(GROUPS[j - nb][0])
    ok = y[:, j] >= 0
    return float(-np.mean(np.log(np.clip(p[ok, s][np.arange(ok.sum()), y[ok, j]], 1e-6, 1))))


def ece(conf: NDArray[np.float32], correct: NDArray[np.bool_], bins: int = 10) -> float:
    """Expected calibration error of the predicted class's probability (10 equal-width bins)."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(float(correct[m].mean()) - float(conf[m].mean()))
    return total


def balanced(pred: NDArray[np.int64], true: NDArray[np.int64]) -> float:
    return float(np.mean([np.mean(pred[true == c] == c) for c in np.unique(true)]))


def score(p: NDArray[np.float32], y: NDArray[np.int64]) -> dict[str, Any]:
    """Per-attribute accuracy, balanced accuracy and calibration error on the crops `p` predicts; mean accuracy
    over our attributes (groups as one multi-class attribute each) and over Market's 30-attribute protocol (age
    as one 4-class attribute, each colour a yes/no attribute, as Lin et al. report)."""
    nb = len(BINARY)
    rows: dict[str, Any] = {}
    for j, (name, _, _) in enumerate(BINARY):
        pred = (p[:, j] >= 0.5).astype(np.int64)
        conf = np.where(pred == 1, p[:, j], 1 - p[:, j])
        rows[name] = {"accuracy": float(np.mean(pred == y[:, j])), "balanced_accuracy": balanced(pred, y[:, j]),
                      "ece": ece(conf, pred == y[:, j]), "positives": float(np.mean(y[:, j]))}  # fmt: skip
    protocol = [rows[n]["accuracy"] for n, _, _ in BINARY]
    for j, (group, classes) in enumerate(GROUPS):
        ok = y[:, nb + j] >= 0
        q, t = p[ok, group_slice(group)], y[ok, nb + j]
        pred = q.argmax(1)
        rows[group] = {"accuracy": float(np.mean(pred == t)), "balanced_accuracy": balanced(pred, t),
                       "ece": ece(q.max(1), pred == t), "classes": len(classes)}  # fmt: skip
        if group == "age":
            protocol.append(rows[group]["accuracy"])
        else:
            protocol += [float(np.mean((pred == c) == (t == c))) for c in range(len(classes))]
    mean = float(np.mean([r["accuracy"] for r in rows.values()]))
    return {"per_attribute": rows, "mean_accuracy": mean, "mean_balanced_accuracy":
            float(np.mean([r["balanced_accuracy"] for r in rows.values()])), "mean_accuracy_market_protocol":
            float(np.mean(protocol)), "market_protocol_attributes": len(protocol)}  # fmt: skip


def colour_baseline(files: NDArray[np.str_], y: NDArray[np.int64], mask: NDArray[np.bool_]) -> dict[str, Any]:
    """vsearch.colors' names (fixed body proportions: Market crops carry no keypoints) as upper / lower colour."""
    from vsearch.colors import name_colors

    nb = len(BINARY)
    out: dict[str, Any] = {}
    names = [name_colors(read_bgr(MARKET / "bounding_box_train" / str(f))[:, :, ::-1].copy()) for f in files[mask]]
    for j, (group, classes) in ((1, GROUPS[1]), (2, GROUPS[2])):
        t = y[mask, nb + j]
        ok = t >= 0
        pred = np.array([classes.index(n[j - 1].replace("grey", "gray")) if n[j - 1].replace("grey", "gray") in classes
                         else -1 for n in names])  # fmt: skip
        out[group] = {"accuracy": float(np.mean(pred[ok] == t[ok])), "balanced_accuracy": balanced(pred[ok], t[ok])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", default="reid-mnv2-1400")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--save", type=Path, help="write the chosen heads (on the stored embedding) here")
    ap.add_argument("--skip-pooled", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    feats = np.load(CACHE_DIR / f"attr-{args.embedder}.npz")
    pids = feats["pids"]
    labels = identity_labels()
    y = np.stack([labels[int(p)] for p in pids])
    train_ids, test_ids = market_split()
    ids = list(train_ids)
    random.Random(1).shuffle(ids)
    cal_ids = set(ids[:N_CALIBRATION_IDS])
    fit_m = np.isin(pids, [i for i in train_ids if i not in cal_ids])
    cal_m, test_m = np.isin(pids, list(cal_ids)), np.isin(pids, test_ids)
    inputs = {"embedding": feats["emb"].astype(np.float32)}
    if not args.skip_pooled:
        inputs["pooled"] = feats["pooled"].astype(np.float32)
    results: dict[str, Any] = {}
    chosen: Heads | None = None
    for feat_name, x in inputs.items():
        for hidden in (0, 512):
            t0 = time.time()
            h = fit(x[fit_m], y[fit_m], hidden, args.epochs, seed=0)
            temps = calibrate(logits(h, x[cal_m]), y[cal_m])
            h = Heads(args.embedder, str(feats["sha256"]), h.mean, h.std, h.w1, h.b1, h.w2, h.b2, temps)
            key = f"{feat_name}-{'mlp' + str(hidden) if hidden else 'linear'}"
            uncal = score(probabilities(logits(h, x[test_m]), np.ones_like(temps)), y[test_m])
            res = score(h.predict(x[test_m]), y[test_m])
            res["uncalibrated_mean_ece"] = float(np.mean([r["ece"] for r in uncal["per_attribute"].values()]))
            res["mean_ece"] = float(np.mean([r["ece"] for r in res["per_attribute"].values()]))
            res["temperatures"] = dict(zip([b[0] for b in BINARY] + [g for g, _ in GROUPS], temps.tolist()))
            res["train_s"] = time.time() - t0
            results[key] = res
            print(f"{key}: mean acc {res['mean_accuracy']:.3f} balanced {res['mean_balanced_accuracy']:.3f} "
                  f"protocol {res['mean_accuracy_market_protocol']:.3f} ece {res['uncalibrated_mean_ece']:.3f}"
                  f"->{res['mean_ece']:.3f} ({res['train_s']:.0f} s)", flush=True)  # fmt: skip
            if feat_name == "embedding" and (chosen is None or res["mean_balanced_accuracy"] > results[
                    f"embedding-{'mlp512' if not chosen.w1.size else 'linear'}"]["mean_balanced_accuracy"]):  # fmt: skip
                chosen = h
    results["colors.py (fixed proportions)"] = colour_baseline(feats["files"], y, test_m)
    rows = []
    for a in [n for n, _, _ in BINARY] + [g for g, _ in GROUPS]:
        row = {"attribute (acc / bal. acc, %)": a}
        for k, r in results.items():
            got = r["per_attribute"].get(a) if "per_attribute" in r else r.get(a)
            row[k] = f"{100 * got['accuracy']:.1f} / {100 * got['balanced_accuracy']:.1f}" if got else "-"
        rows.append(row)
    print_table(rows, "held-out identities")
    assert chosen is not None
    record = {
        "what": "attribute heads on frozen re-ID features, Market-1501 identity-level labels",
        "embedder": args.embedder, "embedder_sha256": str(feats["sha256"]),
        "split": {"fit_ids": int(len(set(pids[fit_m].tolist()))), "calibration_ids": len(cal_ids),
                  "held_out_ids": len(test_ids), "held_out_crops": int(test_m.sum()),
                  "held_out_is": "training.datasets.market_split(151, seed 0) test ids"},
        "columns": list(COLUMNS), "chosen": "embedding-" + ("mlp512" if chosen.w1.size else "linear"),
        "results": results, "machine": machine_info(),
    }  # fmt: skip
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        chosen.save(args.save)
        from vsearch.weights import sha256_file

        record["weights"] = {"file": args.save.name, "sha256": sha256_file(args.save)}
        print(f"wrote {args.save} sha256 {record['weights']['sha256']}")
    if args.json:
        write_json(args.json.stem, record, args.json.parent)


if __name__ == "__main__":
    main()
