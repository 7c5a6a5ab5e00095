"""Features of every Market-1501 crop from a frozen re-ID network, computed once for attribute training.

One ONNX Runtime pass per crop gives both (a) the 256-d embedding the catalog stores and (b) the backbone's last
feature map, pooled three ways (GeM over the whole map, mean over its top and bottom halves: 3 x 1280). The graph
is the shipped embedder's own, with the feature map added as a second output, so (a) is bit-for-bit what ingest
stores. Written to training/cache/attr-<embedder>.npz (git-ignored).

    python -m training.attr_features --embedder reid-mnv2-1400 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from training.cache import CACHE_DIR
from training.datasets import market_files, read_bgr
from vsearch.embed import WEIGHTS, preprocess_imagenet

FEATURE_MAP = "/features.18/features.18.2/Clip_output_0"  # (n, 1280, 8, 4) at 256x128 input, before GeM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", default="reid-mnv2-1400")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    import onnx
    import onnxruntime as ort

    weights = WEIGHTS[args.embedder]
    model = onnx.load(str(weights.verified_path()))
    model.graph.output.append(onnx.helper.make_tensor_value_info(FEATURE_MAP, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    files = market_files()
    emb = np.zeros((len(files), 256), np.float32)
    pooled = np.zeros((len(files), 3 * 1280), np.float16)
    t0 = time.time()
    for i in range(0, len(files), args.batch):
        chunk = files[i : i + args.batch]
        x = preprocess_imagenet([read_bgr(c.path)[:, :, ::-1] for c in chunk], (128, 256))
        e, fmap = sess.run(None, {"images": x})
        emb[i : i + len(chunk)] = e
        gem = np.power(np.power(np.maximum(fmap, 1e-6), 3).mean((2, 3)), 1 / 3)
        h = fmap.shape[2] // 2
        pooled[i : i + len(chunk)] = np.concatenate([gem, fmap[:, :, :h].mean((2, 3)), fmap[:, :, h:].mean((2, 3))], 1)
        if i % (args.batch * 20) == 0:
            print(f"{i + len(chunk)}/{len(files)} crops, {time.time() - t0:.0f} s", flush=True)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = CACHE_DIR / f"attr-{args.embedder}.npz"
    np.savez(out, emb=emb, pooled=pooled, pids=np.array([c.pid for c in files]), cams=np.array([c.cam for c in files]),
             files=np.array([c.path.name for c in files]), sha256=weights.sha256)  # fmt: skip
    print(f"wrote {out} ({len(files)} crops, {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
