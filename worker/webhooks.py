"""The webhook deliverer: a thread of every worker supervisor that POSTs due outbox rows
(db/webhooks.py). Several supervisors may run it at once; each delivery is claimed first."""

from __future__ import annotations

import logging
import threading

import httpx
import orjson

from db import webhooks
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
                except Exception:  # noqa: BLE001 - database restarting: next round
                    log.warning("webhook round failed", exc_info=True)

    def deliver_due(self, client: httpx.Client) -> int:
        maker = sessionmaker_for(self.settings.db_url)
        with maker() as s:
            batch = webhooks.claim_due(s)
        for delivery, endpoint in batch:
            body = orjson.dumps(delivery.payload)
            try:
                r = client.post(endpoint.url, content=body, headers=webhooks.headers(endpoint.secret, delivery, body))
                ok, code, error = r.is_success, r.status_code, None if r.is_success else r.text[:200]
            except httpx.HTTPError as exc:  # refused, timed out, bad URL: all retried
                ok, code, error = False, None, f"{type(exc).__name__}: {exc}"
            with maker() as s:
                outcome = webhooks.finish(s, delivery.id, ok, code, error, self.settings.webhook_retry_seconds)
            if outcome == "failed":
                log.warning("webhook %s to %s failed for good: %s", delivery.id, endpoint.url, error or code)
        return len(batch)
