"""Webhooks: an outbox in the database, delivered at least once and signed per Standard Webhooks.

A status change that an endpoint subscribes to writes a delivery row in the same transaction
(`record`), so an event is never lost between the commit and the POST. Worker supervisors claim
due rows with a conditional UPDATE (any number may run), POST them, and record the outcome;
failures are retried after the delays of `Settings.webhook_retry_seconds` (about a day in all)
and then marked failed. Receivers
dedupe on the webhook-id header, which stays the same across retries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import resources
from . import status as st
from .models import Job, WebhookDelivery, WebhookEndpoint, utcnow

# job status -> event type; the statuses that mean something to a receiver
EVENTS = {st.RUNNING: "pruning_job.started", st.SUCCEEDED: "pruning_job.succeeded",
          st.GATE_FAILED: "pruning_job.gate_failed", st.FAILED: "pruning_job.failed", st.CANCELLED: "pruning_job.cancelled"}
EVENT_TYPES = tuple(EVENTS.values())
CLAIM_SECONDS = 60  # a claimed delivery is due again if its deliverer vanished mid-POST


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def record(session: Session, job: Job, status: str) -> int:
    """Queue one delivery per enabled endpoint of the job's tenant subscribed to this status's
    event. Called from the job repository inside the transaction of the change."""
    event = EVENTS.get(status)
    if event is None:
        return 0
    endpoints = [e for e in session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id == job.tenant_id, WebhookEndpoint.enabled.is_(True))) if event in e.events]
    for endpoint in endpoints:
        delivery = WebhookDelivery(endpoint_id=endpoint.id, event_type=event, payload={})
        session.add(delivery)
        session.flush()  # the id is part of the payload
        delivery.payload = {"id": delivery.id, "type": event, "created_at": resources.ts(utcnow()),
                            "data": {"object": resources.job(job)}}
    return len(endpoints)


def claim_due(session: Session, limit: int = 20) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
    """Take up to `limit` due deliveries for this process; commits."""
    now = utcnow()
    rows = list(session.execute(
        select(WebhookDelivery, WebhookEndpoint).join(WebhookEndpoint)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)))
    mine = []
    for delivery, endpoint in rows:
        taken = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id, WebhookDelivery.next_attempt_at == delivery.next_attempt_at)
            .values(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False)).rowcount
        if taken:
            mine.append((delivery, endpoint))
    session.commit()
    return mine


def finish(session: Session, delivery_id: str, ok: bool, status_code: int | None, error: str | None,
           retry_seconds: list[float]) -> str:
    """Record one attempt; schedules the next one or gives up. Returns the delivery's status."""
    d = session.get(WebhookDelivery, delivery_id)
    d.attempts += 1
    d.last_status, d.last_error = status_code, (error or None) and error[:1000]
    if ok:
        d.status, d.delivered_at, d.next_attempt_at = "delivered", utcnow(), None
    elif d.attempts > len(retry_seconds):
        d.status, d.next_attempt_at = "failed", None
    else:
        d.next_attempt_at = utcnow() + timedelta(seconds=retry_seconds[d.attempts - 1])
    session.commit()
    return d.status


def headers(secret: str, delivery: WebhookDelivery, body: bytes, now: float | None = None) -> dict[str, Any]:
    timestamp = int(now if now is not None else time.time())
    return {"content-type": "application/json", "webhook-id": delivery.id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, delivery.id, timestamp, body), "user-agent": "topiary-webhooks/1"}


def retry_now(delivery: WebhookDelivery) -> None:
    """Manual redelivery (of a failed or pending message): due at once, attempts kept."""
    delivery.status, delivery.next_attempt_at = "pending", utcnow()


def last_deliveries(session: Session, endpoint_id: str, limit: int) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
                                .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)))
