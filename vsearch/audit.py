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

import csv
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vsearch.cases import csv_cell
from vsearch.catalog import AuditFilter, Catalog
from vsearch.errors import InputError, StorageError, VSearchError

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

    def find(self, where: AuditFilter, limit: int = 1000, before_seq: int | None = None) -> list[dict[str, Any]]:
        """Entries matching `where` (user, case, action, time range), newest first; `before_seq` pages on."""
        return [json.loads(line) for line in self.catalog.audit_find(where, limit, before_seq)]

    def verify(self, expect_hash: str | None = None) -> ChainCheck:
        """Check the table's hash chain (catalog.audit_verify) and the mirror against the table, line by line: an
        entry edited, inserted or removed in either is named. `expect_hash`: a head hash printed by an earlier verify,
        which must still be in the chain (entries cut off the end leave no other trace)."""
        self._sync()
        problems, last, head = self.catalog.audit_verify()
        found = [p.problem for p in problems]
        if expect_hash is not None and not any(h == expect_hash for _, _, h in self.catalog.audit_chain()):
            found.append(f"the hash {expect_hash} kept from an earlier verify is in no entry: entries were removed"
                         " from the end or the chain was rewritten")  # fmt: skip
        found += self._mirror_problems()
        return ChainCheck(found, last, head)

    def _mirror_problems(self) -> list[str]:
        """Where audit.jsonl and the table disagree (the mirror may lack the newest entries: a crash between commit
        and mirror is caught up by the next write, not a problem)."""
        found: list[str] = []
        rows = self.catalog.audit_chain()
        row = next(rows, None)
        with open(self.path, "rb") as f:
            for n, raw in enumerate(f, 1):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                try:
                    seq = json.loads(line).get("seq")
                except (ValueError, AttributeError):
                    seq = None
                if not isinstance(seq, int):
                    found.append(f"audit.jsonl line {n} is no entry of the log (no seq)")
                    continue
                while row is not None and row[0] < seq:
                    found.append(f"entry {row[0]} is in the catalog but missing from audit.jsonl")
                    row = next(rows, None)
                if row is None or row[0] != seq:
                    found.append(f"audit.jsonl line {n} holds entry {seq}, which the catalog's table does not")
                elif row[1] != line:
                    found.append(f"entry {seq} differs between audit.jsonl (line {n}) and the catalog's table")
                    row = next(rows, None)
                else:
                    row = next(rows, None)
        return found

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


@dataclass
class ChainCheck:
    """What `vsearch audit verify` found: the problems (none: intact), the entries checked and the head hash."""

    problems: list[str] = field(default_factory=list)
    entries: int = 0
    head: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "head_hash": self.head, "problems": self.problems}


def audit_filter(user: str | None = None, case_id: int | None = None, action: str | None = None,
                 from_ts_s: float | None = None, to_ts_s: float | None = None) -> AuditFilter:  # fmt: skip
    """The filter of `vsearch audit` and GET /audit: times (epoch seconds) become the log's own text form."""
    if from_ts_s is not None and to_ts_s is not None and not from_ts_s < to_ts_s:
        raise InputError("the audit window must end after it starts")
    return AuditFilter(user or None, case_id, action or None, None if from_ts_s is None else _log_time(math.floor(from_ts_s)),
                       None if to_ts_s is None else _log_time(math.ceil(to_ts_s)))  # fmt: skip


def _log_time(ts_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_s))


CSV_COLUMNS = ("seq", "time", "action", "key_name", "role", "case_id", "reason", "status", "method", "path", "client")


def entries_to_csv(entries: Iterable[dict[str, Any]]) -> str:
    """Entries as CSV: the columns most filtered on, then the whole entry as JSON; every text cell is neutralised
    against spreadsheet formulas (cases.csv_cell), whatever a user typed into a reason or a name."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([*CSV_COLUMNS, "entry"])
    for e in entries:
        cells = [e.get(c) for c in CSV_COLUMNS]
        w.writerow([csv_cell(c) if isinstance(c, str) else ("" if c is None else c) for c in cells]
                   + [csv_cell(json.dumps(e, sort_keys=True, default=str))])  # fmt: skip
    return out.getvalue()


def image_sha256s(images: Sequence[bytes]) -> list[str]:
    """The SHA-256 of each query image, in order: how the audit log, marks and results name a query image."""
    return [hashlib.sha256(b).hexdigest() for b in images]


class SearchRecord(dict[str, Any]):
    """The audit entry of one search, the same through the CLI and the API: who and through what (the shell's
    `who`), the filters as given, the investigator's marks, the query images (hashed once, by `query`), what the
    search returned (`returned`) and its outcome (`finish`). Refused searches keep what was known when they were
    refused. The service writes it (Service.search, `finish`), once, for every shell; `code` is how the shell
    numbers an outcome (the CLI's exit code, the API's status), given the error (None: answered)."""

    sha256s: list[str] | None = None
    written = False

    def __init__(self, who: dict[str, Any], filters: dict[str, Any], confirmed: Sequence[int] = (),
                 rejected: Sequence[int] = (), code: Callable[[Exception | None], dict[str, Any]] | None = None) -> None:  # fmt: skip
        super().__init__({"action": "search", **who}, filters=filters, returned_sighting_ids=[])
        if confirmed or rejected:
            self.update(confirmed=list(confirmed), rejected=list(rejected))
        self._code = code

    def finish(self, audit: AuditLog, error: Exception | None = None) -> None:
        """Write the entry with the search's outcome: `answered`, or `refused` with the reason; once (a search
        refused in the service and then by its shell is one entry)."""
        if self.written:
            return
        entry = {**self, "outcome": "answered" if error is None else "refused"}
        if error is not None:
            entry["error"] = str(error)
        audit.append({**entry, **(self._code(error) if self._code is not None else {})})
        self.written = True

    @contextmanager
    def audited(self, audit: AuditLog | None) -> Iterator[SearchRecord]:
        """A search by a shell: its entry is written when the block ends, refused with the reason of a vsearch
        error it raises (unless the service wrote it already); nothing is searched if it cannot be written.
        `audit` None: no catalog to audit in (the shell refuses the search)."""
        if audit is None:
            yield self
            return
        audit.ready()
        try:
            yield self
        except VSearchError as e:
            self.finish(audit, e)
            raise
        self.finish(audit)

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
