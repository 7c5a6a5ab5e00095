"""The catalog: the source of truth for cameras, videos, sightings, track boxes, ingest progress, cases and marks.

    records.py   the values that go in and come out (Sighting lives in vsearch.types)
    schema.py    migrations, in order, each written once for every engine
    dialect.py   what differs between engines: parameter style, row locks, column types
    engine.py    what the SQL needs from an engine (transactions, queries, id lists)
    cases.py     CaseBook: cases and their items     marks.py   MarkBook: investigators' marks
    watchlists.py WatchBook: watchlist entries, their vectors, alerts (written with the sightings they are about)
    audit.py     AuditBook: the audit log's rows, appended in the transaction of the change they describe
    embedders.py EmbedderBook: adapted embedder versions, vectors staged for a switch of embedder, the switches
    base.py      Catalog: videos, sightings, ids, time windows, the change log (Case-, Mark-, Audit-, EmbedderBook)
    sqlite.py    SqliteCatalog, embedded             postgres.py  PostgresCatalog, shared (psycopg loaded on use)

Schemas are versioned: each migration runs once, in order, inside a transaction.
"""

from vsearch.catalog.audit import AuditBook, AuditFilter, ChainProblem
from vsearch.catalog.base import SIGHTING_COLS, Catalog
from vsearch.catalog.cases import CaseBook
from vsearch.catalog.dialect import POSTGRES, SQLITE, Dialect
from vsearch.catalog.embedders import EmbedderBook, EmbedderVersion, Switch
from vsearch.catalog.marks import MarkBook
from vsearch.catalog.postgres import PostgresCatalog
from vsearch.catalog.records import (
    LIVE_SHA_PREFIX,
    Alert,
    CameraInfo,
    CameraStats,
    Case,
    CaseItem,
    Changes,
    Checkpoint,
    Delivery,
    Mark,
    NewCaseItem,
    NewSighting,
    TrackBoxRow,
    VideoRecord,
    WatchEntry,
    WatchVector,
)
from vsearch.catalog.schema import MIGRATIONS, SCHEMA_VERSION
from vsearch.catalog.sqlite import SqliteCatalog
from vsearch.catalog.watchlists import Hit, WatchBook

__all__ = [
    "MIGRATIONS", "POSTGRES", "AuditBook", "AuditFilter", "ChainProblem", "SCHEMA_VERSION", "SIGHTING_COLS", "SQLITE", "CameraInfo", "CameraStats", "Case",
    "CaseBook", "CaseItem", "Catalog", "Changes", "Checkpoint", "Dialect", "EmbedderBook", "EmbedderVersion", "Mark", "MarkBook", "NewCaseItem",
    "LIVE_SHA_PREFIX", "NewSighting", "PostgresCatalog", "SqliteCatalog", "Switch", "TrackBoxRow", "VideoRecord", "Alert", "Delivery", "Hit", "WatchBook",
    "WatchEntry", "WatchVector",
]  # fmt: skip
