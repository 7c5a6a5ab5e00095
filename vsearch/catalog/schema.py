"""The catalog's schema: migrations in order, each written once for every engine.

Column types and the auto-increment key are named in braces (`{key}`, `{int}`, `{real}`, `{blob}`); each engine's
`Dialect` fills them in (dialect.py). Append only: a released migration never changes.
"""

from __future__ import annotations

_SCHEMA_V1 = """
CREATE TABLE cameras (
    id TEXT PRIMARY KEY,
    created_at {real} NOT NULL
);
CREATE TABLE videos (
    id {key},
    camera_id TEXT NOT NULL REFERENCES cameras(id),
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    start_ts {real} NOT NULL,
    fps {real} NOT NULL,
    frame_count {int} NOT NULL,
    width {int} NOT NULL,
    height {int} NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ingesting', 'done', 'failed')),
    processed_until_s {real} NOT NULL DEFAULT 0,
    frames_sampled {int} NOT NULL DEFAULT 0,
    error TEXT,
    embedder TEXT NOT NULL,
    added_at {real} NOT NULL,
    finished_at {real}
);
CREATE TABLE sightings (
    id {key},
    video_id {int} NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    camera_id TEXT NOT NULL,
    track_id {int} NOT NULL,
    ts {real} NOT NULL,
    pts {real} NOT NULL,
    x1 {real} NOT NULL, y1 {real} NOT NULL, x2 {real} NOT NULL, y2 {real} NOT NULL,
    confidence {real} NOT NULL,
    quality {real} NOT NULL,
    thumb_path TEXT NOT NULL,
    embedder TEXT NOT NULL,
    embedding {blob} NOT NULL
);
CREATE INDEX sightings_cam_ts ON sightings (camera_id, ts);
CREATE INDEX sightings_ts ON sightings (ts);
CREATE INDEX sightings_track ON sightings (video_id, track_id);
CREATE INDEX sightings_embedder ON sightings (embedder, id);
CREATE TABLE track_boxes (
    video_id {int} NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    track_id {int} NOT NULL,
    pts {real} NOT NULL,
    x1 {real} NOT NULL, y1 {real} NOT NULL, x2 {real} NOT NULL, y2 {real} NOT NULL,
    confidence {real} NOT NULL,
    PRIMARY KEY (video_id, track_id, pts)
);
"""

_SCHEMA_CASES = """
ALTER TABLE cameras ADD COLUMN name TEXT;
ALTER TABLE cameras ADD COLUMN lat {real};
ALTER TABLE cameras ADD COLUMN lon {real};
CREATE TABLE cases (
    id {key},
    name TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE TABLE case_items (
    id {key},
    case_id {int} NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('clip', 'sighting')),
    ref TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    video_id {int} NOT NULL,
    track_id {int} NOT NULL,
    start_ts {real} NOT NULL,
    end_ts {real} NOT NULL,
    start_pts {real} NOT NULL,
    end_pts {real} NOT NULL,
    sighting_id {int} NOT NULL,
    query_sha256 TEXT,
    search_filters TEXT,
    note TEXT NOT NULL DEFAULT '',
    added_by TEXT NOT NULL,
    added_at {real} NOT NULL,
    UNIQUE (case_id, kind, ref)
);
CREATE INDEX case_items_case ON case_items (case_id, start_ts);
CREATE INDEX track_boxes_time ON track_boxes (video_id, pts);
"""

_SCHEMA_WATCHLISTS = """
CREATE TABLE watchlist_entries (
    id {key},
    name TEXT NOT NULL,
    case_id {int},
    cameras TEXT NOT NULL DEFAULT '',
    min_score {real} NOT NULL,
    expires_at {real},
    status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'removed')),
    embedder TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE TABLE watchlist_vectors (
    id {key},
    entry_id {int} NOT NULL REFERENCES watchlist_entries(id),
    source TEXT NOT NULL,
    image_path TEXT,
    embedding {blob} NOT NULL,
    added_at {real} NOT NULL
);
CREATE INDEX watchlist_vectors_entry ON watchlist_vectors (entry_id);
CREATE TABLE alerts (
    id {key},
    entry_id {int} NOT NULL REFERENCES watchlist_entries(id),
    camera_id TEXT NOT NULL,
    video_id {int} NOT NULL,
    track_id {int} NOT NULL,
    sighting_id {int} NOT NULL,
    score {real} NOT NULL,
    ts {real} NOT NULL,
    first_ts {real} NOT NULL,
    last_ts {real} NOT NULL,
    tracks {int} NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'confirmed', 'false')),
    acked_by TEXT,
    acked_at {real},
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE INDEX alerts_entry ON alerts (entry_id, camera_id, last_ts);
CREATE TABLE alert_tracks (
    entry_id {int} NOT NULL,
    video_id {int} NOT NULL,
    track_id {int} NOT NULL,
    alert_id {int} NOT NULL REFERENCES alerts(id),
    PRIMARY KEY (entry_id, video_id, track_id)
);
CREATE TABLE watchlist_version (one {int} PRIMARY KEY, version {int} NOT NULL);
INSERT INTO watchlist_version (one, version) VALUES (1, 0)
"""

_SCHEMA_DELIVERY = """
ALTER TABLE watchlist_entries ADD COLUMN webhook_url TEXT;
ALTER TABLE watchlist_entries ADD COLUMN webhook_secret TEXT;
CREATE TABLE alert_log (
    seq {int} PRIMARY KEY,
    alert_id {int} NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('new', 'update', 'ack')),
    ts {real} NOT NULL
);
CREATE TABLE webhook_deliveries (
    id {key},
    alert_id {int} NOT NULL REFERENCES alerts(id),
    entry_id {int} NOT NULL REFERENCES watchlist_entries(id),
    url TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts {int} NOT NULL DEFAULT 0,
    next_at {real} NOT NULL,
    lease_until {real},
    last_error TEXT,
    created_at {real} NOT NULL,
    delivered_at {real}
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at)
"""

_SCHEMA_ATTRIBUTES = """
CREATE TABLE sighting_attributes (
    sighting_id {int} PRIMARY KEY REFERENCES sightings(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    ts {real} NOT NULL,
    p_female {real} NOT NULL, p_long_hair {real} NOT NULL, p_short_sleeves {real} NOT NULL,
    p_short_lower {real} NOT NULL, p_skirt {real} NOT NULL, p_hat {real} NOT NULL, p_backpack {real} NOT NULL,
    p_bag {real} NOT NULL, p_handbag {real} NOT NULL,
    p_age_young {real} NOT NULL, p_age_teenager {real} NOT NULL, p_age_adult {real} NOT NULL, p_age_old {real} NOT NULL,
    p_upper_black {real} NOT NULL, p_upper_blue {real} NOT NULL, p_upper_green {real} NOT NULL,
    p_upper_gray {real} NOT NULL, p_upper_purple {real} NOT NULL, p_upper_red {real} NOT NULL,
    p_upper_white {real} NOT NULL, p_upper_yellow {real} NOT NULL,
    p_lower_black {real} NOT NULL, p_lower_blue {real} NOT NULL, p_lower_brown {real} NOT NULL,
    p_lower_gray {real} NOT NULL, p_lower_green {real} NOT NULL, p_lower_pink {real} NOT NULL,
    p_lower_purple {real} NOT NULL, p_lower_white {real} NOT NULL, p_lower_yellow {real} NOT NULL
);
CREATE INDEX sighting_attributes_ts ON sighting_attributes (model, ts);
CREATE INDEX sighting_attributes_camera ON sighting_attributes (model, camera_id, ts)
"""

_SCHEMA_CAMERA_SLOTS = """
ALTER TABLE cameras ADD COLUMN slot {int};
CREATE UNIQUE INDEX cameras_slot ON cameras (slot);
CREATE TABLE id_slots (slot {int} NOT NULL, bucket {int} NOT NULL, next_n {int} NOT NULL, n {int} NOT NULL,
    PRIMARY KEY (slot, bucket));
CREATE TABLE id_layout (one {int} PRIMARY KEY, legacy_slots {int} NOT NULL, legacy_from_ts {real}, legacy_to_ts {real});
INSERT INTO id_layout (one, legacy_slots, legacy_from_ts, legacy_to_ts)
    SELECT 1, CASE WHEN MAX(next_n) > 4096 THEN (MAX(next_n) + 4095) / 4096 ELSE 1 END,
    (SELECT MIN(ts) FROM sightings), (SELECT MAX(ts) FROM sightings) FROM id_buckets
"""

# (version, what it adds, SQL with the engine's types in braces)
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "cameras, videos, sightings with embeddings, track boxes", _SCHEMA_V1),
    (2, "dominant clothing colours per sighting",
     "ALTER TABLE sightings ADD COLUMN upper_color TEXT; ALTER TABLE sightings ADD COLUMN lower_color TEXT;"),
    (3, "sighting change log: followers catch up by sequence number",
     "CREATE TABLE sighting_log (seq {key}, sighting_id {int} NOT NULL,"
     " embedder TEXT NOT NULL, added {int} NOT NULL);"
     " INSERT INTO sighting_log (sighting_id, embedder, added) SELECT id, embedder, 1 FROM sightings ORDER BY id;"),
    (4, "ingest leases (one process owns a video's ingest) and the tracker's state at the last checkpoint",
     "ALTER TABLE videos ADD COLUMN lease_owner TEXT; ALTER TABLE videos ADD COLUMN lease_until {real};"
     " ALTER TABLE videos ADD COLUMN resume_state TEXT;"),
    (5, "sighting ids allocated by minute of their time (id_buckets), so a time window is an id range",
     "CREATE TABLE id_buckets (bucket {int} PRIMARY KEY, next_n {int} NOT NULL, n {int} NOT NULL);"),
    (6, "cases with confirmed items; camera names and coordinates", _SCHEMA_CASES),
    (7, "investigators' marks on search results (same person / different person)",
     "CREATE TABLE search_marks (id {key}, ts {real} NOT NULL,"
     " sighting_id {int} NOT NULL, mark TEXT NOT NULL CHECK (mark IN ('same', 'different')),"
     " query_sha256 TEXT NOT NULL, marked_by TEXT NOT NULL);"
     " CREATE INDEX search_marks_sighting ON search_marks (sighting_id);"),
    (8, "sightings indexed by (embedder, id, ts): a time window's partial minutes are counted in the index",
     "CREATE INDEX sightings_embedder_ts ON sightings (embedder, id, ts); DROP INDEX sightings_embedder;"),
    (9, "case members: investigators a case's owner (its creator) or an admin shares it with",
     "CREATE TABLE case_members (case_id {int} NOT NULL REFERENCES cases(id) ON DELETE CASCADE,"
     " member TEXT NOT NULL, added_by TEXT NOT NULL, added_at {real} NOT NULL, PRIMARY KEY (case_id, member));"
     " CREATE INDEX case_members_member ON case_members (member);"),
    (10, "sightings indexed by (camera_id, ts, embedder, id): a camera filter reads its ids from the index alone,"
     " never the rows (with their embeddings)",
     "CREATE INDEX sightings_camera ON sightings (camera_id, ts, embedder, id); DROP INDEX sightings_cam_ts;"),
    (11, "the audit log: one row per entry, written in the transaction of the change it describes; seq has no gaps"
     " (audit.jsonl in the data dir is its mirror)",
     "CREATE TABLE audit (seq {int} PRIMARY KEY, time TEXT NOT NULL, action TEXT, key_name TEXT, case_id {int},"
     " query_sha256 TEXT, line TEXT NOT NULL);"
     " CREATE INDEX audit_query ON audit (query_sha256); CREATE INDEX audit_case ON audit (case_id, seq);"),
    (12, "embedder versions made by vsearch adapt, vectors staged for a switch of embedder, the switches made",
     "CREATE TABLE embedder_versions (name TEXT PRIMARY KEY, base TEXT NOT NULL, sha256 TEXT NOT NULL,"
     " path TEXT NOT NULL, record TEXT NOT NULL, created_by TEXT NOT NULL, created_at {real} NOT NULL);"
     " CREATE TABLE staged_vectors (embedder TEXT NOT NULL, sighting_id {int} NOT NULL, embedding {blob} NOT NULL,"
     " PRIMARY KEY (embedder, sighting_id));"
     " CREATE TABLE embedder_switches (id {key}, ts {real} NOT NULL, from_embedder TEXT NOT NULL,"
     " to_embedder TEXT NOT NULL, reason TEXT NOT NULL CHECK (reason IN ('adapt', 'rollback')),"
     " switched_by TEXT NOT NULL, sightings {int} NOT NULL);"),
    (13, "watchlists: entries with their embeddings, alerts (one per entry per track: alert_tracks) written in the"
     " transaction of the sighting, and a version counter that matchers reload on", _SCHEMA_WATCHLISTS),
    (14, "the audit log chained and append-only: each entry's hash covers the one before (existing entries are"
     " chained once, in seq order, by the step `_chain_audit`); UPDATE and DELETE refused; entries found by time",
     "ALTER TABLE audit ADD COLUMN hash TEXT; CREATE INDEX audit_time ON audit (time);"
     " CREATE INDEX audit_key_name ON audit (key_name, seq); CREATE INDEX audit_action ON audit (action, seq)"),
    (15, "alert delivery: a log of alert events (new, update, ack) numbered without gaps that every API node streams"
     " from, and webhook deliveries (per entry: URL and signing secret) with their retries, written with the alert",
     _SCHEMA_DELIVERY),
    (16, "per-sighting attribute probabilities (vsearch.attributes), with the sighting's time and camera so that a"
     " description search filters and ranks in this table alone", _SCHEMA_ATTRIBUTES),
    (17, "retention: a camera's own limit in days, cases closed (when, by whom, why: a closed case holds nothing),"
     " and the journal of files a committed deletion left to remove",
     "ALTER TABLE cameras ADD COLUMN retention_days {real}; ALTER TABLE cases ADD COLUMN closed_at {real};"
     " ALTER TABLE cases ADD COLUMN closed_by TEXT; ALTER TABLE cases ADD COLUMN close_reason TEXT;"
     " CREATE TABLE retention_files (path TEXT PRIMARY KEY, added_at {real} NOT NULL);"
     " CREATE INDEX case_items_video ON case_items (video_id, start_pts)"),
    (18, "camera slots in sighting ids (vsearch.ids): a camera filter is a slot, not a list of ids; ids are counted"
     " per camera and minute (id_slots); the ids allocated before keep their layout (id_layout: the slots their"
     " minute counters reached, never a camera's, and the time span they cover)", _SCHEMA_CAMERA_SLOTS),
    (19, "track boxes carry their time (ts: the video's start + pts); on PostgreSQL, sightings (by id: ids are"
     " time-ordered), track boxes (by ts) and the change log (by the time an entry was written) are partitioned by"
     " UTC day (the step `_partition_by_day`, catalog/partitions.py), so that retention drops a whole expired day",
     "ALTER TABLE track_boxes ADD COLUMN ts {real};"
     " UPDATE track_boxes SET ts = (SELECT v.start_ts + track_boxes.pts FROM videos v WHERE v.id = track_boxes.video_id)"),
)  # fmt: skip
# migrations that also need code (in the catalog, after their SQL, in the same transaction): version -> method name
STEPS: dict[int, str] = {14: "_chain_audit", 19: "_partition_by_day"}
SCHEMA_VERSION = MIGRATIONS[-1][0]
