"""Alert delivery: the alert log every API node streams from (SSE), webhooks (signed, retried, dead-lettered).

Quick tier on the small service (conftest.small_service: hsv-parts vectors, no model), a real uvicorn server in
this process and real local HTTP receivers; the alert log's order across writers on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api import create_app
from vsearch.catalog import Catalog, Hit, WatchVector
from vsearch.config import ApiKey
from vsearch.errors import InputError, NotFoundError, PermissionDeniedError
from vsearch.service import VSearch
from vsearch.webhooks import sign

from .conftest import small_service
from .test_watchlist import ADMIN, IVAN, OLGA, replay_as_camera, track_sighting

CLI = {"role": "cli"}
ALLOW = ("127.0.0.1/32", "ops.example", "x.example")  # the local receivers' address, and the API test's names


def allowing(svc: VSearch, *allow: str) -> None:
    """The service's webhook allow list (settings.webhook_allow, VSEARCH_WEBHOOK_ALLOW) set to `allow`."""
    svc.settings = svc.settings.model_copy(update={"webhook_allow": allow})
    svc.watchlists.settings = svc.settings


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VSearch]:
    svc = small_service(tmp_path_factory.mktemp("delivery") / "data")
    svc.watchlists.matcher.fold_s = 0.0
    svc.settings = svc.settings.model_copy(update={"api_keys": [
        ApiKey(name="ada", key=ADMIN, role="admin"), ApiKey(name="ivan", key=IVAN, role="investigator"),
        ApiKey(name="olga", key=OLGA, role="investigator")]})  # fmt: skip
    allowing(svc, *ALLOW)
    yield svc
    svc.close()


def entry_for(svc: VSearch, track: int, by: str = "ivan", **kw: Any) -> int:
    ctx = {"role": "admin" if by == "ada" else "investigator"}
    e = svc.watchlists.add(f"visitor {track}", [], by, ctx, min_score=0.99, sighting_ids=[track_sighting(svc, track)], **kw)
    return e.id


# -- the alert log: numbered without gaps, visible in commit order, on every engine -------------------------------
def test_the_alert_log_is_read_in_commit_order_by_another_node(reopen: Callable[[], Catalog]) -> None:
    writer, other, reader = reopen(), reopen(), reopen()
    try:
        vec = np.ones(4, np.float32) / 2
        e1 = writer.add_watch_entry("a", None, [], 0.9, None, "x", "ivan", [WatchVector(0, "image:a", vec, None)])
        hit = lambda track: Hit(e1.id, "door", 1, track, 100 + track, 0.95, 1e9 + track)  # noqa: E731
        assert reader.alert_log_last() == 0
        blocked = threading.Event()
        with writer.transaction():
            writer.record_hits([hit(1)], 0.0)
            assert reader.alert_events(0) == []  # not committed yet: no node streams it

            def second() -> None:  # another ingest worker commits an alert meanwhile: it waits for the first
                other.record_hits([hit(2)], 0.0)
                blocked.set()

            t = threading.Thread(target=second)
            t.start()
            time.sleep(0.5)
            assert reader.alert_events(0) == []
        t.join(30)
        assert blocked.is_set()
        events = reader.alert_events(0)
        assert [(s, ev) for s, _, ev in events] == [(1, "new"), (2, "new")]
        first = events[0][1]
        writer.record_hits([Hit(e1.id, "door", 1, 1, 150, 0.97, 1e9 + 1)], 0.0)  # the same track, better: an update
        writer.ack_alert(first, "false", "ivan")
        assert [(s, a, ev) for s, a, ev in reader.alert_events(2)] == [(3, first, "update"), (4, first, "ack")]
        assert reader.alert_log_last() == 4
    finally:
        for c in (writer, other, reader):
            c.close()


# -- SSE through a real server ---------------------------------------------------------------------------------------
class Server:
    """The API under uvicorn in a thread of this process, on a free port."""

    def __init__(self, svc: VSearch) -> None:
        app = create_app(svc.settings, svc)
        app.state.alert_poll_s = 0.1
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def server(small: VSearch) -> Iterator[Server]:
    """Per test: its webhook sender (every API node runs one) must not race the webhook tests' own senders."""
    s = Server(small)
    yield s
    s.close()


def read_events(lines: Iterator[str], until: Callable[[dict[str, Any]], bool], timeout_s: float = 20) -> list[dict[str, Any]]:
    """Parsed SSE events (`event`, `id`, `data`) up to and including the first that `until` accepts."""
    out, ev, deadline = [], {}, time.time() + timeout_s
    for line in lines:
        if time.time() > deadline:
            break
        if line == "":
            if ev:
                out.append(ev)
                if until(ev):
                    return out
            ev = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            ev[field] = json.loads(value) if field == "data" else value.strip()
    raise AssertionError(f"no such event within {timeout_s} s; got {out}")


def test_the_stream_delivers_an_alert_written_after_the_client_connected(small: VSearch, server: Server) -> None:
    entry = entry_for(small, 5)
    with httpx.stream("GET", f"{server.base}/watchlists/events", headers={"X-API-Key": IVAN}, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        ready = read_events(lines, lambda e: e.get("event") == "ready")[-1]
        t0 = time.perf_counter()
        replay_as_camera(small, "door", "sha-sse")  # an ingest checkpoint (another worker's, for all the API knows)
        got = read_events(lines, lambda e: e.get("event") == "alert" and e["data"]["entry_id"] == entry)[-1]
        latency_ms = (time.perf_counter() - t0) * 1000
    a = got["data"]
    assert a["event"] == "new" and a["camera_id"] == "door" and a["track_id"] == 5 and a["status"] == "new"
    assert int(got["id"]) > ready["data"]["seq"] and a["clip_id"] and a["score"] >= 0.99
    print(f"alert on the stream {latency_ms:.0f} ms after the checkpoint began (commit + poll 0.1 s)")
    # a reconnect resumes after the last event it saw: the acknowledgement comes, nothing before it again
    small.watchlists.ack(a["id"], "confirmed", "ivan", {"role": "investigator"})
    with httpx.stream("GET", f"{server.base}/watchlists/events", headers={"X-API-Key": IVAN, "Last-Event-ID": got["id"]}, timeout=30) as r:
        evs = read_events(r.iter_lines(), lambda e: e.get("event") == "alert")
    assert [e["data"]["event"] for e in evs if e.get("event") == "alert"] == ["ack"]
    assert evs[-1]["data"]["status"] == "confirmed" and evs[-1]["data"]["id"] == a["id"]
    # another investigator's stream never carries ivan's alerts; a new stream starts with the caller's latest
    with httpx.stream("GET", f"{server.base}/watchlists/events", headers={"X-API-Key": OLGA}, timeout=30) as r:
        evs = read_events(r.iter_lines(), lambda e: e.get("event") == "ready")
    assert [e for e in evs if e.get("event") == "alert"] == []
    with httpx.stream("GET", f"{server.base}/watchlists/events", headers={"X-API-Key": IVAN}, timeout=30) as r:
        evs = read_events(r.iter_lines(), lambda e: e.get("event") == "ready")
    assert a["id"] in [e["data"]["id"] for e in evs if e.get("event") == "alert"]


def test_an_api_node_streams_what_another_node_writes_through_postgresql(small: VSearch, postgres_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two services over one PostgreSQL catalog, each with its own data dir: the API node under uvicorn, the other
    an ingest worker; the worker's checkpoint raises an alert, the node's stream carries it."""
    from vsearch.config import Settings

    keys = [ApiKey(name="ivan", key=IVAN, role="investigator")]
    node = VSearch(Settings(data_dir=tmp_path / "node", catalog_url=postgres_url, embedder="hsv-parts", api_keys=keys))
    worker = VSearch(Settings(data_dir=tmp_path / "worker", catalog_url=postgres_url, embedder="hsv-parts"))
    try:
        worker.watchlists.matcher.fold_s = 0.0
        replay_as_camera(small, "lobby", "sha-pg-lobby", into=worker)
        entry = entry_for(worker, 3)
        server = Server(node)
        try:
            with httpx.stream("GET", f"{server.base}/watchlists/events", headers={"X-API-Key": IVAN}, timeout=30) as r:
                lines = r.iter_lines()
                read_events(lines, lambda e: e.get("event") == "ready")
                replay_as_camera(small, "door", "sha-pg-door", into=worker)
                got = read_events(lines, lambda e: e.get("event") == "alert" and e["data"]["track_id"] == 3)[-1]
        finally:
            server.close()
        a = got["data"]
        assert a["entry_id"] == entry and a["camera_id"] == "door" and a["event"] == "new" and a["score"] > 0.999
    finally:
        node.close()
        worker.close()


@pytest.mark.parametrize(
    "headers, url, status, message",
    [
        ({}, "/watchlists/events", 401, "missing API key"),
        ({"X-API-Key": "wrong-key-0123456789abcdef"}, "/watchlists/events", 401, "invalid API key"),
        ({"X-API-Key": IVAN, "Last-Event-ID": "abc"}, "/watchlists/events", 400, "Last-Event-ID"),
        ({"X-API-Key": IVAN, "Last-Event-ID": "-1"}, "/watchlists/events", 400, "Last-Event-ID"),
        ({"X-API-Key": IVAN}, "/watchlists/events?after=-3", 422, "greater than or equal"),
        ({"X-API-Key": IVAN}, "/watchlists/events?after=999999", 400, "past the alert log's last"),
        ({"X-API-Key": IVAN, "Last-Event-ID": "999999"}, "/watchlists/events", 400, "past the alert log's last"),
        ({"X-API-Key": IVAN}, "/watchlists/9999/image.jpg", 404, "no watchlist entry with id 9999"),
    ],
)
def test_bad_stream_requests_are_refused_with_a_reason(server: Server, headers: dict, url: str, status: int, message: str) -> None:
    r = httpx.get(server.base + url, headers=headers, timeout=10)
    assert r.status_code == status and message in r.text, r.text


# -- webhooks against real local receivers -----------------------------------------------------------------------
class Receiver:
    """A local HTTP server recording each POST; answers `status` (settable)."""

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.status, self.got, self.at = status, [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((self.headers, body))  # case-insensitive names
                outer.at.append(time.time())
                self.send_response(outer.status)
                if location:
                    self.send_header("Location", location)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_a_webhook_body_is_signed_with_the_entry_secret(small: VSearch) -> None:
    rx = Receiver()
    try:
        entry = entry_for(small, 6, webhook_url=rx.url)
        secret = small.watchlists.webhook_secret(entry, "ivan", {"role": "investigator"})
        assert secret and len(secret) >= 32
        replay_as_camera(small, "door", "sha-hook")
        queued = small.catalog.claim_deliveries(time.time(), 0.0)  # queued with the alert, before any sender ran
        assert [d.url for d in queued if d.entry_id == entry] == [rx.url]
        sender = small.watchlists.deliverer(timeout_s=5)
        assert sender.run_once() >= 1
        (headers, body), *_ = [(h, b) for h, b in rx.got if json.loads(b)["alert"]["entry_id"] == entry]
        stamp = headers["X-VSearch-Timestamp"]
        expected = "sha256=" + hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-VSearch-Signature"], expected)
        assert headers["X-VSearch-Signature"] != sign("another secret", stamp, body)
        doc = json.loads(body)
        assert doc["event"] == "alert" and doc["alert"]["track_id"] == 6 and doc["alert"]["camera_id"] == "door"
        delivery = small.catalog.delivery(int(headers["X-VSearch-Delivery"]))
        assert delivery.status == "delivered" and delivery.attempts == 1
        assert sender.run_once() == 0  # delivered once, not again
    finally:
        rx.close()


def test_a_failing_receiver_gets_retries_with_backoff_then_the_dead_letter_list(small: VSearch) -> None:
    rx = Receiver(status=500)
    try:
        entry = entry_for(small, 1, webhook_url=rx.url)
        replay_as_camera(small, "door", "sha-dead")
        sender = small.watchlists.deliverer(base_s=0.2, max_attempts=3, timeout_s=5)
        deadline = time.time() + 20
        while [d for d in small.catalog.deliveries("pending") if d.entry_id == entry] and time.time() < deadline:
            sender.run_once()
            time.sleep(0.05)
        dead = [d for d in small.watchlists.dead_letters({"role": "admin"}) if d.entry_id == entry]
        assert dead and all(d.attempts == 3 and d.last_error == "HTTP 500 Internal Server Error" for d in dead)
        sent = [json.loads(b)["delivery_id"] for h, b in rx.got if json.loads(b)["alert"]["entry_id"] == entry]
        assert sorted(sent) == sorted(d.id for d in dead for _ in range(3))  # three attempts each, then nothing
        at = [t for (_, b), t in zip(rx.got, rx.at) if json.loads(b)["delivery_id"] == dead[0].id]
        assert at[1] - at[0] >= 0.2 and at[2] - at[1] >= 0.4  # backoff: 0.2 s, then twice that
        assert sender.run_once() == 0
        with pytest.raises(PermissionDeniedError, match="for admins"):
            small.watchlists.dead_letters({"role": "investigator"})
        again = small.watchlists.retry_delivery(dead[0].id, "ada", {"role": "admin"})
        assert again.status == "pending" and again.attempts == 0
        with pytest.raises(InputError, match="is not dead"):
            small.watchlists.retry_delivery(dead[0].id, "ada", {"role": "admin"})
        rx.status = 200
        assert sender.run_once() >= 1
        assert small.catalog.delivery(dead[0].id).status == "delivered"
        assert "webhook.retry" in [r.get("action") for r in small.audit.read(50)]
    finally:
        rx.close()


def test_a_sender_that_dies_mid_delivery_leaves_it_to_another(small: VSearch) -> None:
    """A claimed delivery whose sender never reports back (killed) is claimed again once its lease runs out."""
    rx = Receiver()
    try:
        entry = entry_for(small, 4, webhook_url=rx.url)
        replay_as_camera(small, "door", "sha-lease")
        now = time.time()
        taken = [d for d in small.catalog.claim_deliveries(now, 0.5, 100) if d.entry_id == entry]  # then "dies"
        assert taken
        assert not [d for d in small.catalog.claim_deliveries(now + 0.1, 0.5, 100) if d.entry_id == entry]  # leased
        again = [d for d in small.catalog.claim_deliveries(now + 1.0, 30, 100) if d.entry_id == entry]
        assert sorted(d.id for d in again) == sorted(d.id for d in taken)
    finally:
        rx.close()


def test_a_receiver_that_is_down_never_holds_up_the_ingest(small: VSearch) -> None:
    """The checkpoint only queues the delivery (no sender running here): it commits at once, the alert with it."""
    rx = Receiver()
    url = rx.url
    rx.close()  # nobody listens there now
    entry = entry_for(small, 2, webhook_url=url)
    t0 = time.perf_counter()
    replay_as_camera(small, "door", "sha-down")
    took = time.perf_counter() - t0
    pending = [d for d in small.catalog.deliveries("pending") if d.entry_id == entry]
    assert len(pending) == 1 and pending[0].attempts == 0
    sender = small.watchlists.deliverer(base_s=60, timeout_s=2)
    sender.run_once()
    d = small.catalog.delivery(pending[0].id)
    assert d.status == "pending" and d.attempts == 1 and "refused" in (d.last_error or "").lower(), d
    print(f"checkpoint with a webhook alert committed in {took * 1000:.0f} ms with its receiver down")


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.org/hook", "http:// or https://"),
        ("http://", "with a host"),
        ("hooks.example.org/x", "http:// or https://"),
        ("http://a b/", "spaces or control characters"),
        ("http://example.org/\x00", "spaces or control characters"),
        ("http://example.org:99999/", "out of range"),
        ("http://example.org/" + "x" * 2000, "1 to 2000 characters"),
        ("", "1 to 2000 characters"),
    ],
)
def test_bad_webhook_urls_are_refused_with_a_reason(small: VSearch, url: str, message: str) -> None:
    entry = entry_for(small, 2)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        small.watchlists.set_webhook(entry, url, "ivan", {"role": "investigator"})
    assert small.catalog.watch_entry(entry).webhook_url is None


def test_the_api_sets_webhooks_and_shows_dead_letters_to_admins(small: VSearch) -> None:
    with TestClient(create_app(small.settings, small)) as c:
        h = {"ivan": {"X-API-Key": IVAN}, "olga": {"X-API-Key": OLGA}, "ada": {"X-API-Key": ADMIN}}
        sid = track_sighting(small, 3)
        r = c.post("/watchlists", data={"name": "v3", "sighting": str(sid), "webhook_url": "https://ops.example/h"}, headers=h["ivan"])
        assert r.status_code == 201 and r.json()["webhook_url"] == "https://ops.example/h" and len(r.json()["webhook_secret"]) >= 32
        entry, first_secret = r.json()["id"], r.json()["webhook_secret"]
        assert "webhook_secret" not in c.get(f"/watchlists/{entry}", headers=h["ivan"]).json()
        r = c.post("/watchlists", data={"name": "v3", "sighting": str(sid), "webhook_url": "gopher://x"}, headers=h["ivan"])
        assert r.status_code == 400 and "http:// or https://" in r.json()["detail"]
        r = c.put(f"/watchlists/{entry}/webhook", json={"url": "https://ops.example/h2"}, headers=h["ivan"])
        assert r.status_code == 200 and r.json()["webhook_url"] == "https://ops.example/h2"
        assert r.json()["webhook_secret"] == small.catalog.webhook_secret(entry) != first_secret  # a new secret each time
        assert c.put(f"/watchlists/{entry}/webhook", json={"url": "https://x.example"}, headers=h["olga"]).status_code == 404
        assert c.put(f"/watchlists/{entry}/webhook", json={"url": "file:///etc/passwd"}, headers=h["ivan"]).status_code == 400
        for url, host in [("http://169.254.169.254/latest/meta-data/", "169.254.169.254"), ("http://localhost:8080/admin", "localhost"),
                          ("https://OPS.example.evil.org/h", "ops.example.evil.org"), ("http://[::1]:9/h", "::1")]:  # fmt: skip
            r = c.put(f"/watchlists/{entry}/webhook", json={"url": url}, headers=h["ivan"])
            assert r.status_code == 400 and host in r.json()["detail"] and "VSEARCH_WEBHOOK_ALLOW" in r.json()["detail"], r.text
            r = c.post("/watchlists", data={"name": "v3", "sighting": str(sid), "webhook_url": url}, headers=h["ivan"])
            assert r.status_code == 400 and host in r.json()["detail"], r.text
        assert small.catalog.watch_entry(entry).webhook_url == "https://ops.example/h2"  # the refused URLs changed nothing
        assert c.put(f"/watchlists/{entry}/webhook", json={}, headers=h["ivan"]).status_code == 422
        assert c.delete(f"/watchlists/{entry}/webhook", headers=h["ivan"]).status_code == 204
        assert small.catalog.watch_entry(entry).webhook_url is None
        r = c.get(f"/watchlists/{entry}/image.jpg", headers=h["ivan"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert c.get(f"/watchlists/{entry}/image.jpg", headers=h["olga"]).status_code == 404
        r = c.get("/webhooks/dead", headers=h["ivan"])
        assert r.status_code == 403 and "admin" in r.json()["detail"]
        dead = c.get("/webhooks/dead", headers=h["ada"])
        assert dead.status_code == 200 and isinstance(dead.json(), list)
        assert c.post("/webhooks/999999/retry", headers=h["ada"]).status_code == 404
        assert c.post("/webhooks/1/retry", headers=h["ivan"]).status_code == 403
        assert c.post("/webhooks/0/retry", headers=h["ada"]).status_code == 422
    actions = [r.get("action") for r in small.audit.read(100)]
    assert "watchlist.webhook" in actions
    assert all("webhook_secret" not in json.dumps(r) for r in small.audit.read(200))


def test_the_cli_sets_webhooks_and_lists_dead_letters(small: VSearch) -> None:
    from .test_watchlist import cli

    d = small.settings.data_dir
    entry = str(entry_for(small, 4, by="ada"))
    allow = {"VSEARCH_WEBHOOK_ALLOW": "ops.example, 127.0.0.0/8"}  # comma-separated, as an admin writes it
    r = cli("watchlist", "webhook", entry, "http://127.0.0.1:9/hook", data_dir=d, env=allow)
    assert r.returncode == 0 and "signing secret" in r.stdout, r.stderr
    for env, url, message in [
        ({"VSEARCH_WEBHOOK_ALLOW": ""}, "https://ops.example/h", "no webhook host is allowed"),  # a fresh install
        (allow, "http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        (allow, "http://10.0.0.7/h", "VSEARCH_WEBHOOK_ALLOW"),
        (allow, "http://localhost:9/h", "'localhost' is not"),
        ({"VSEARCH_WEBHOOK_ALLOW": "10.0.0.0/33"}, "http://10.0.0.7/h", "VSEARCH_WEBHOOK_ALLOW"),  # a bad setting
    ]:
        r = cli("watchlist", "webhook", entry, url, data_dir=d, env=env)
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, (url, r.stderr)
        assert "Traceback" not in r.stderr and small.catalog.watch_entry(int(entry)).webhook_url == "http://127.0.0.1:9/hook"
    for args, message in [
        (["watchlist", "webhook", entry, "ftp://x"], "http:// or https://"),
        (["watchlist", "webhook", entry], "give a webhook URL or --off"),
        (["watchlist", "webhook", "9999", "--off"], "no watchlist entry with id 9999"),
        (["webhooks", "retry", "999999"], "no webhook delivery with id 999999"),
    ]:
        r = cli(*args, data_dir=d)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = cli("webhooks", "dead", "--json", data_dir=d)
    assert r.returncode == 0 and isinstance(json.loads(r.stdout), list)
    assert cli("watchlist", "webhook", entry, "--off", data_dir=d).returncode == 0
    assert small.catalog.watch_entry(int(entry)).webhook_url is None
    with pytest.raises(NotFoundError):
        small.catalog.delivery(999999)


def test_an_allowed_name_that_resolves_to_a_disallowed_address_is_not_contacted(small: VSearch) -> None:
    """The check again at send time, on the address the name resolves to (DNS rebinding): "localhost" is an allowed
    name but resolves to loopback, which is not allowed; nothing is sent, the failure is recorded. Allowing the
    address then delivers it to the same receiver (it was reachable all along)."""
    rx = Receiver()
    mine = lambda: [json.loads(b)["delivery_id"] for _, b in rx.got if json.loads(b)["alert"]["entry_id"] == entry]  # noqa: E731
    try:
        allowing(small, "localhost")
        entry = entry_for(small, 5, webhook_url=rx.url.replace("127.0.0.1", "localhost"))  # the name is allowed
        replay_as_camera(small, "gate", "sha-rebind")
        small.watchlists.deliverer(max_attempts=1, timeout_s=5).run_once()
        dead = [d for d in small.watchlists.dead_letters({"role": "admin"}) if d.entry_id == entry]
        assert dead and all(d.attempts == 1 and "resolves to 127.0.0.1" in (d.last_error or "") and "not allowed"
                            in (d.last_error or "") for d in dead), dead  # fmt: skip
        assert mine() == []  # never contacted
        allowing(small, "localhost", "127.0.0.1/32")
        for d in dead:
            small.watchlists.retry_delivery(d.id, "ada", {"role": "admin"})
        small.watchlists.deliverer(max_attempts=1, timeout_s=5).run_once()
        assert all(small.catalog.delivery(d.id).status == "delivered" for d in dead)
        assert sorted(mine()) == sorted(d.id for d in dead)
        # a URL whose host was taken off the list is not sent to any more either (the whole check again at send time)
        allowing(small, "127.0.0.1/32")
        replay_as_camera(small, "lobby", "sha-rebind-2")
        small.watchlists.deliverer(max_attempts=1, timeout_s=5).run_once()
        again = [d for d in small.watchlists.dead_letters({"role": "admin"}) if d.entry_id == entry]
        assert again and all("'localhost' is not allowed" in (d.last_error or "") for d in again), again
        assert sorted(mine()) == sorted(d.id for d in dead)
    finally:
        allowing(small, *ALLOW)
        rx.close()


def test_a_redirect_is_not_followed(small: VSearch) -> None:
    """A receiver answering 3xx does not get the server to send anything elsewhere: the attempt fails, saying so."""
    inner = Receiver()
    rx = Receiver(status=302, location=inner.url)
    try:
        entry = entry_for(small, 3, webhook_url=rx.url)
        replay_as_camera(small, "yard", "sha-redirect")
        small.watchlists.deliverer(base_s=60, timeout_s=5).run_once()
        failed = [d for d in small.catalog.deliveries("pending") if d.entry_id == entry]
        assert failed and all(d.attempts == 1 and "HTTP 302" in (d.last_error or "") and "redirects are not followed"
                              in (d.last_error or "") for d in failed), failed  # fmt: skip
        assert len([b for _, b in rx.got if json.loads(b)["alert"]["entry_id"] == entry]) == len(failed) and inner.got == []
    finally:
        rx.close()
        inner.close()
