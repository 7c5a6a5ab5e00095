"""Made tests/data/catalog_v13.tar.gz: run with a checkout of vsearch before camera slots (e0b83bd) on PYTHONPATH,
then `tar czf catalog_v13.tar.gz catalog.sqlite index/e.faiss index/e.json` in OUT: a catalog and its index as that
code writes them (ids without camera slots; 4,200 sightings in one minute, so their n reaches slot 1)."""
import sys
from pathlib import Path

import numpy as np

from vsearch.catalog import Checkpoint, NewSighting, SqliteCatalog
from vsearch.store import Store

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
cat = SqliteCatalog(out / "catalog.sqlite")
def rows(camera, ts):
    v = rng.normal(size=(len(ts), 4)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [NewSighting(camera, 1, t, t - 1000, (0, 0, 1, 1), 0.9, 0.5, "t.jpg", x, None, None) for t, x in zip(ts, v)]
store = Store(cat, out / "index", "e", 4)
a = cat.begin_video("north", "/a.mp4", "a", 1000.0, 10.0, 100, (64, 64), "e").id
store.commit_chunk(a, Checkpoint(rows("north", 1200.0 + np.arange(4200) * 0.01), [], 1.0, 1, True))  # 4,200 in minute 20
b = cat.begin_video("south", "/b.mp4", "b", 1000.0, 10.0, 100, (64, 64), "e").id
store.commit_chunk(b, Checkpoint(rows("south", 1000.0 + np.arange(30) * 10.0), [], 1.0, 1, True))
store.close()

