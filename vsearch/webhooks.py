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

Where (SSRF): a URL's host must be allowed by the operator's `webhook_allow` (VSEARCH_WEBHOOK_ALLOW: host names
and CIDR networks; empty, the default, allows none), checked when the URL is set (`check_url`) and again at each
send (`post`), which also resolves the name itself and connects only to an address that is public or in a listed
network (a listed name resolving to loopback, link-local or private space, DNS rebinding included, is not sent
to: the attempt fails with that reason). Redirects are never followed, and no proxy is used.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vsearch import __version__
from vsearch.catalog import Catalog, Delivery
from vsearch.errors import InputError

log = logging.getLogger("vsearch.webhooks")
MAX_URL = 2000
BASE_S = 2.0  # the first retry's delay; each next one doubles it
MAX_ATTEMPTS = 8  # 2 + 4 + ... + 128 s: about four minutes of a receiver down before a delivery is dead
TIMEOUT_S = 5.0
BATCH = 5  # deliveries claimed at once; their lease outlasts sending them all (BATCH attempts of up to TIMEOUT_S)
SETTING = "VSEARCH_WEBHOOK_ALLOW"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Allow:
    """The hosts webhooks may go to (settings.webhook_allow): host names, and networks (config.py normalises both)."""

    def __init__(self, items: Sequence[str]) -> None:
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in items:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.names.add(item.lower().rstrip("."))

    def _in_networks(self, ip: IPAddress) -> bool:
        ip = ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip
        return any(ip in net for net in self.networks)

    def check_host(self, host: str) -> None:
        """InputError unless `host` (a name, or an address) is allowed."""
        host = host.lower().rstrip(".")
        if not self.names and not self.networks:
            raise InputError(f"webhook host {host!r} refused: no webhook host is allowed until an admin lists it in"
                             f" {SETTING} (host names or CIDR networks, comma-separated)")  # fmt: skip
        try:
            ok = self._in_networks(ipaddress.ip_address(host))
        except ValueError:
            ok = host in self.names
        if not ok:
            raise InputError(f"webhook host {host!r} is not allowed: webhooks go only to the host names and networks"
                             f" an admin listed in {SETTING}")  # fmt: skip

    def address_ok(self, ip: IPAddress) -> bool:
        """May a connection go to `ip` (an allowed host's resolved address): public, or in a listed network."""
        plain = ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip
        return self._in_networks(plain) or plain.is_global


def check_url(url: str, allow: Sequence[str]) -> str:
    """An http(s) URL with a host that `allow` (settings.webhook_allow) allows, or InputError saying what is wrong."""
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
    Allow(allow).check_host(parts.hostname)
    return url


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the HMAC-SHA256 hex digest of `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _connect(host: str, port: int, timeout: float | None, allow: Allow) -> socket.socket:
    """A connection to an allowed address of `host` (resolved here, so the address checked is the one used)."""
    addrs = list(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
    ok = [a for a in addrs if allow.address_ok(ipaddress.ip_address(a.split("%")[0]))]
    if not ok:
        raise ConnectionRefusedError(f"{host} resolves to {', '.join(addrs)}: not allowed (a webhook address must be"
                                     f" public or in a network listed in {SETTING}); not sent")  # fmt: skip
    error: OSError | None = None
    for a in ok:
        try:
            return socket.create_connection((a, port), timeout)
        except OSError as e:
            error = e
    raise error or OSError(f"no address of {host}")


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float = TIMEOUT_S, allow: Sequence[str] = ()) -> str | None:
    """POST `body` to `url` if `allow` allows its host and the address it resolves to (never following a redirect);
    None when the receiver answered 2xx, else what went wrong (one line)."""
    parts, allowed = urlsplit(url), Allow(allow)
    try:
        allowed.check_host(parts.hostname or "")  # again: the allow list may have changed since the URL was set
    except InputError as e:
        return f"{e}; not sent"
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=timeout_s)
    conn._create_connection = lambda address, timeout=None, source=None: _connect(  # type: ignore[attr-defined]
        address[0], address[1], timeout, allowed)
    try:
        conn.request("POST", urlunsplit(("", "", parts.path or "/", parts.query, "")), body=body, headers={
            "Content-Type": "application/json", "User-Agent": f"vsearch/{__version__}", **headers})  # fmt: skip
        with conn.getresponse() as res:
            res.read(64 * 1024)
            status, reason = res.status, res.reason
    except (OSError, http.client.HTTPException, ValueError) as e:
        return " ".join(str(e).split()) or type(e).__name__
    finally:
        conn.close()
    if 200 <= status < 300:
        return None
    return f"HTTP {status} {reason}" + (" (redirects are not followed)" if 300 <= status < 400 else "")


class Deliverer:
    """Sends the catalog's due webhook deliveries, to hosts `allow` allows (settings.webhook_allow); `run_once` for
    one pass, `start`/`close` for a thread."""

    def __init__(
        self, catalog: Catalog, payload: Callable[[Delivery], dict[str, Any]], base_s: float = BASE_S,
        max_attempts: int = MAX_ATTEMPTS, timeout_s: float = TIMEOUT_S, interval_s: float = 1.0,
        allow: Sequence[str] = (),
    ) -> None:  # fmt: skip
        self.catalog, self.payload, self.allow = catalog, payload, tuple(allow)
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
                                       "X-VSearch-Delivery": str(d.id), "X-VSearch-Event": "alert"}, self.timeout_s, self.allow)  # fmt: skip
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
