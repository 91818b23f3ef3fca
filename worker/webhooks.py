"""The webhook deliverer: a thread of every worker supervisor that POSTs due outbox rows
(db/webhooks.py). Several supervisors may run it at once; each delivery is claimed first."""

from __future__ import annotations

import logging
import threading

import httpx
import orjson

from db import egress, metrics, webhooks
from db.engine import sessionmaker_for
from db.settings import Settings

log = logging.getLogger(__name__)


class Deliverer(threading.Thread):
    def __init__(self, settings: Settings, interval: float = 1.0):
        super().__init__(daemon=True, name="webhooks")
        self.settings, self.interval = settings, interval
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=self.settings.webhook_timeout_seconds, follow_redirects=False) as client:
            while not self.stop.wait(self.interval):
                try:
                    self.deliver_due(client)
                except Exception:  # a database restarting: the next round tries again
                    log.warning("webhook round failed", exc_info=True)

    def deliver_due(self, client: httpx.Client) -> int:
        maker = sessionmaker_for(self.settings.db_url)
        with maker() as s:
            batch = webhooks.claim_due(s)
        for delivery, endpoint in batch:
            ok, code, error = self.post(client, endpoint.url, delivery, endpoint.secret)
            with maker() as s:
                outcome = webhooks.finish(s, delivery.id, ok, code, error, self.settings.webhook_retry_seconds)
            # one attempt: delivered, failed for good, or failed with a retry scheduled
            metrics.get().webhook_deliveries.labels(outcome if outcome != "pending" else "retry").inc()
            if outcome == "failed":
                log.warning("webhook %s to %s failed for good: %s", delivery.id, endpoint.url, error or code)
        return len(batch)

    def post(self, client: httpx.Client, url: str, delivery, secret: str) -> tuple[bool, int | None, str | None]:
        """One attempt: (delivered, HTTP status, reason). The host is resolved and checked now,
        and the connection goes to the address checked (the Host header and TLS name stay the
        URL's). Only the status code and a fixed short reason are kept: never the receiver's
        body or the transport's own words, which would tell a tenant about internal services."""
        body = orjson.dumps(delivery.payload)
        try:
            scheme, host, port = egress.split(url)
            address = egress.resolve(host, port, self.settings.webhook_allowed_networks)
        except egress.Refused:
            return False, None, "address not allowed"
        target = httpx.URL(url).copy_with(host=address)
        headers = {**webhooks.headers(secret, delivery, body), "host": httpx.URL(url).netloc.decode("ascii")}
        try:
            r = client.post(target, content=body, headers=headers,
                            extensions={"sni_hostname": host} if scheme == "https" else {})
        except httpx.HTTPError:  # refused, reset, timed out: one reason for all
            return False, None, "no response"
        return r.is_success, r.status_code, None
