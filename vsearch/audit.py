"""The audit log: who searched for whom, who read or changed which case, every export. One module for the API, the
CLI and the library (casework, evidence).

Atomic with what it describes: an entry is a row of the catalog's `audit` table (catalog/audit.py), appended in
the same transaction as the change it records, so a crash leaves both or neither. `audit.jsonl` in the data dir
is the table's mirror, one JSON line per entry with its `seq` (1, 2, 3... no gaps, in commit order): appended
and fsync'd after each commit, and caught up from the table before the next entry, so the lines a crash kept
from it are written then. Before any change the mirror must be writable: if it is not (a full disk, a directory
in its place), nothing is changed and StorageError says why. A log written before the table existed is taken
in, numbered, once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from vsearch.catalog import Catalog
from vsearch.errors import StorageError

log = logging.getLogger("vsearch.audit")
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
_TAIL_CHUNK = 64 * 1024


def _lock_for(path: Path) -> threading.Lock:
    """One lock per mirror file, shared by every AuditLog of this process on it (flock serialises processes)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(Path(path).resolve()), threading.Lock())


class Entry(dict[str, Any]):
    """An audit entry being written with its change: fields may be added until the change commits."""

    dropped = False

    def drop(self) -> None:
        """Nothing changed after all: write no entry."""
        self.dropped = True


class AuditLog:
    """The audit log of one catalog, mirrored to `mirror` (the data dir's audit.jsonl)."""

    def __init__(self, catalog: Catalog, mirror: Path) -> None:
        self.catalog = catalog
        self.path = Path(mirror)
        self._lock = _lock_for(self.path)

    def ready(self) -> None:
        """Check that entries can be written: the mirror caught up with the table. StorageError if it cannot be."""
        self._sync()

    @contextmanager
    def change(self, record: dict[str, Any]) -> Iterator[Entry]:
        """A change and its audit entry in one catalog transaction: catalog calls made inside the block join it,
        the entry (`record` plus what the block adds to it) is appended last, and both commit or neither does."""
        self._sync()  # an entry that could not be mirrored must not be made: refuse before changing anything
        entry = Entry(record)
        with self.catalog.transaction():
            yield entry
            if not entry.dropped:
                self.catalog.append_audit(dict(entry))
        if not entry.dropped:
            try:
                self._sync()
            except StorageError as e:  # the change and its entry are committed; the next write mirrors the entry
                log.warning("audit entry committed but not yet mirrored: %s", e)

    @contextmanager
    def change_by(self, action: str, by: str, context: dict[str, Any] | None, **fields: Any) -> Iterator[Entry]:
        """`change` of an `action` by `by`, with the caller's context (role, client...) and the action's fields."""
        with self.change({"action": action, "key_name": by, **(context or {}), **fields}) as entry:
            yield entry

    def append(self, record: dict[str, Any]) -> None:
        """Append an entry that goes with no change of its own (a search, a read, a refused request)."""
        with self.change(record):
            pass

    def read(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Entries newest first, skipping `offset`."""
        return [json.loads(line) for line in self.catalog.audit_page(limit, offset)]

    def with_queries(self, query_sha256s: Collection[str]) -> list[dict[str, Any]]:
        """Entries that name one of these query images (searches and the case changes that cite them), oldest first."""
        return [json.loads(line) for line in self.catalog.audit_with_queries(query_sha256s)]

    # -- the mirror ------------------------------------------------------------------------------------------------
    def _sync(self) -> None:
        """Append to the mirror the table's entries it lacks, and fsync it (under a lock, threads and processes)."""
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                while True:
                    with open(self.path, "a+b") as f:
                        fcntl.flock(f, fcntl.LOCK_EX)
                        if os.fstat(f.fileno()).st_ino != os.stat(self.path).st_ino:
                            continue  # another process replaced the file while we waited: take the new one
                        self._catch_up(f)
                        return
            except OSError as e:
                raise StorageError(f"the audit log cannot be written ({e.strerror or e}: {self.path.name}); nothing was done") from None

    def _catch_up(self, f: IO[bytes]) -> None:
        last = _last_seq(f)
        if last is None:  # a log from before the table: its lines become the first entries, numbered
            self._take_in(f)
            return
        rows = self.catalog.audit_after(last)
        if not rows and last > (newest := self.catalog.audit_last_seq()):
            raise OSError(0, f"it holds entry {last} but the catalog's audit table ends at {newest}: it belongs to another catalog")
        while rows:
            f.write(b"".join(line.encode() + b"\n" for _, line in rows))
            rows = self.catalog.audit_after(rows[-1][0])
        f.flush()
        os.fsync(f.fileno())

    def _take_in(self, f: IO[bytes]) -> None:
        f.seek(0)
        with self.catalog.transaction():
            for raw in f:
                if raw.strip():
                    try:
                        record = json.loads(raw)
                    except ValueError:
                        record = None
                    self.catalog.append_audit(record if isinstance(record, dict) else {"unreadable_line": raw.decode("utf-8", "replace")})
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "wb") as out:
            seq = 0
            while rows := self.catalog.audit_after(seq):
                out.write(b"".join(line.encode() + b"\n" for _, line in rows))
                seq = rows[-1][0]
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)


def image_sha256s(images: Sequence[bytes]) -> list[str]:
    """The SHA-256 of each query image, in order: how the audit log, marks and results name a query image."""
    return [hashlib.sha256(b).hexdigest() for b in images]


class SearchRecord(dict[str, Any]):
    """The audit entry of one search, the same through the CLI and the API: who and through what (the shell's
    `who`), the filters as given, the investigator's marks, the query images (hashed once, by `query`) and what
    the search returned (`returned`). Refused searches keep what was known when they were refused."""

    sha256s: list[str] | None = None

    def __init__(self, who: dict[str, Any], filters: dict[str, Any], confirmed: Sequence[int] = (),
                 rejected: Sequence[int] = ()) -> None:  # fmt: skip
        super().__init__(who, filters=filters, returned_sighting_ids=[])
        if confirmed or rejected:
            self.update(confirmed=list(confirmed), rejected=list(rejected))

    def query(self, images: Sequence[bytes]) -> list[str]:
        """The query images' SHA-256s, recorded (the first, the total size, and all when several); hashed once."""
        if self.sha256s is None:
            self.sha256s = shas = image_sha256s(images)
            self.update(query_sha256=shas[0], query_bytes=sum(map(len, images)))
            if len(shas) > 1:
                self["query_sha256s"] = shas
        return self.sha256s

    def returned(self, sighting_ids: Iterable[int], clip_ids: Iterable[str]) -> None:
        self.update(returned_sighting_ids=list(sighting_ids), returned_clip_ids=list(clip_ids))


def _last_seq(f: IO[bytes]) -> int | None:
    """The `seq` of the mirror's last line (0: empty; None: a line without one, written before the table). A last
    line cut short by a crash is removed first (the table still holds its entry)."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return 0
    tail = b""
    pos = end
    while pos > 0 and tail.count(b"\n") < 2 + (not tail.endswith(b"\n")):
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        f.seek(pos)
        tail = f.read(step) + tail
    if not tail.endswith(b"\n"):
        cut = tail.rfind(b"\n")
        f.truncate(pos + cut + 1 if cut >= 0 else 0)
        tail = tail[: cut + 1] if cut >= 0 else b""
        if not tail.strip():
            return 0
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        seq = json.loads(last).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None
