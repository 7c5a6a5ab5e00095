"""The ReID trainer's PK sampler: every batch P distinct identities, and a small boosted set seen many times."""

from __future__ import annotations

import random
from collections import Counter

from training.train_reid import pk_batches


def test_pk_batches_hold_distinct_identities_and_boost_a_small_set() -> None:
    labels = [i // 5 for i in range(5 * 200)]  # 200 identities, 5 crops each
    plain = pk_batches(labels, 16, 4, random.Random(0))
    seen = Counter(labels[i] for b in plain for i in b[::4])
    assert len(plain) == 200 // 16 and max(seen.values()) == 1
    boosted = frozenset(range(10))
    batches = pk_batches(labels, 16, 4, random.Random(0), boosted, per_batch=4)
    assert len(batches) == 190 // 12
    for b in batches:
        ids = [labels[i] for i in b[::4]]
        assert len(b) == 64 and len(set(ids)) == 16 and sum(y in boosted for y in ids) == 4
        assert all(labels[i] == labels[b[4 * (i_ // 4)]] for i_, i in enumerate(b))  # K crops of one identity in a row
    counts = Counter(labels[i] for b in batches for i in b[::4])
    assert {counts[y] for y in boosted} <= {6, 7} and max(counts[y] for y in range(10, 200)) == 1
