"""Crash testing: SIGKILL this process at a named point, for the fault suite (tests/test_faults.py).

`VSEARCH_FAULT_KILL_AT=<point>:<n>` kills the process (a real SIGKILL: no cleanup, no finally, as a power cut
would) the n-th time it reaches `kill_point("<point>")`. Unset, a call costs one dict lookup. The points:
`catalog.commit_chunk` (inside a checkpoint's transaction, before COMMIT), `store.commit_chunk` (after the
catalog commit, before the index follows it), `store.watch` (a checkpoint's watchlist alerts written, before
its COMMIT), `index.save` (inside the index write: temp file written, not yet
renamed), `store.save` (index file replaced, its metadata not yet).
"""

from __future__ import annotations

import os
import signal

_reached: dict[str, int] = {}


def kill_point(name: str) -> None:
    """SIGKILL this process here if VSEARCH_FAULT_KILL_AT names this point and this is its n-th arrival."""
    spec = os.environ.get("VSEARCH_FAULT_KILL_AT")
    if not spec or spec.rpartition(":")[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(spec.rpartition(":")[2]):
        os.kill(os.getpid(), signal.SIGKILL)
