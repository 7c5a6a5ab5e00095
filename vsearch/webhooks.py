"""Webhooks: each new alert of an entry with a webhook is POSTed to its URL as signed JSON, retried with backoff.

The delivery is queued in the catalog in the transaction that writes the alert (catalog/watchlists.py), so no
alert is lost by a crash and ingest never waits for a receiver: a `Deliverer` (a thread of every `vsearch serve`,
or `vsearch webhooks run`) claims due deliveries under a lease (several senders never send one delivery at once;
a sender that dies lets its lease expire), POSTs them, and records each attempt. A failed attempt is retried after
`base_s * 2**(attempts-1)` seconds; after `max_attempts` the delivery is dead: listed for admins
(`GET /webhooks/dead`, `vsearch webhooks dead`) and sent again only when one of them says so.

The receiver checks `X-VSearch-Signature: sha256=<hex>`, the HMAC-SHA256 under the entry's secret of
`<X-VSearch-Timestamp>.<body>` (`sign`), and may drop a delivery id it has seen (`X-VSearch-Delivery`):
delivery is at least once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from vsearch import __version__
from vsearch.catalog import Catalog, Delivery
from vsearch.errors import InputError

log = logging.getLogger("vsearch.webhooks")
MAX_URL = 2000
BASE_S = 2.0  # the first retry's delay; each next one doubles it
MAX_ATTEMPTS = 8  # 2 + 4 + ... + 128 s: about four minutes of a receiver down before a delivery is dead
TIMEOUT_S = 5.0
BATCH = 5  # deliveries claimed at once; their lease outlasts sending them all (BATCH attempts of up to TIMEOUT_S)


def check_url(url: str) -> str:
    """An http(s) URL with a host, or InputError saying what is wrong."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise InputError(f"expected a webhook URL of 1 to {MAX_URL} characters, got {len(url)}")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InputError("a webhook URL may not hold spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"expected an http:// or https:// webhook URL with a host, got {url!r}")
    try:
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError as e:
        raise InputError(f"webhook URL {url!r}: {e}") from None
    return url


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the HMAC-SHA256 hex digest of `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float = TIMEOUT_S) -> str | None:
    """POST `body`; None when the receiver answered 2xx, else what went wrong (one line)."""
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"vsearch/{__version__}", **headers})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as res:  # noqa: S310  (the URL was checked: http(s))
            res.read(64 * 1024)
            return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return " ".join(str(getattr(e, "reason", e)).split()) or type(e).__name__


class Deliverer:
    """Sends the catalog's due webhook deliveries; `run_once` for one pass, `start`/`close` for a thread."""

    def __init__(
        self, catalog: Catalog, payload: Callable[[Delivery], dict[str, Any]], base_s: float = BASE_S,
        max_attempts: int = MAX_ATTEMPTS, timeout_s: float = TIMEOUT_S, interval_s: float = 1.0,
    ) -> None:  # fmt: skip
        self.catalog, self.payload = catalog, payload
        self.base_s, self.max_attempts, self.timeout_s, self.interval_s = base_s, max_attempts, timeout_s, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Send every delivery due now (each claimed under a lease first); the number of attempts made."""
        made = 0
        while not self._stop.is_set():
            # the lease outlasts the batch's sending, so a live sender's lease never expires under it
            claimed = self.catalog.claim_deliveries(time.time(), BATCH * self.timeout_s + 30, BATCH)
            if not claimed:
                return made
            for d in claimed:
                self._send(d)
                made += 1
        return made

    def _send(self, d: Delivery) -> None:
        try:
            body = json.dumps(self.payload(d), sort_keys=True).encode()
            secret = self.catalog.webhook_secret(d.entry_id) or ""
            stamp = str(int(time.time()))
            error = post(d.url, body, {"X-VSearch-Signature": sign(secret, stamp, body), "X-VSearch-Timestamp": stamp,
                                       "X-VSearch-Delivery": str(d.id), "X-VSearch-Event": "alert"}, self.timeout_s)  # fmt: skip
        except Exception as e:  # a payload that cannot be built is an attempt that failed, not a dead sender
            error = f"{type(e).__name__}: {e}"
        attempts = d.attempts + 1
        retry_at = None if attempts >= self.max_attempts else time.time() + self.base_s * 2 ** (attempts - 1)
        if error is not None:
            log.warning("webhook delivery %s (alert %s) attempt %s failed: %s", d.id, d.alert_id, attempts, error)
        self.catalog.finish_delivery(d.id, error, retry_at)

    def start(self) -> Deliverer:
        """Send in a daemon thread, polling every `interval_s`, until `close`."""
        self._thread = threading.Thread(target=self._loop, name="vsearch-webhooks", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as e:  # the catalog briefly unreachable: try again at the next tick
                log.error("webhook sender: %s", e)
            self._stop.wait(self.interval_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)
