"""Webhook endpoints and their delivery log. Events: pruning_job.started | succeeded | failed |
cancelled, POSTed as {id, type, created_at, data: {object: <job>}} with Standard Webhooks headers
(webhook-id, webhook-timestamp, webhook-signature); the secret is shown once, at creation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import egress, webhooks
from db.models import WebhookDelivery, WebhookEndpoint

from .. import crud, wire
from ..deps import Principal, require, session, settings
from ..problems import Problem
from ..schemas import DeliveryOut, Page, WebhookCreate, WebhookOut, WebhookUpdate

router = APIRouter(prefix="/v1/webhook_endpoints", tags=["webhooks"])


def _out(e: WebhookEndpoint, secret: bool = False) -> dict:
    """schemas.WebhookOut"""
    out = {"id": e.id, "object": "webhook_endpoint", "url": e.url, "events": e.events, "enabled": e.enabled,
           "created_at": wire.ts(e.created_at)}
    if secret:
        out["secret"] = e.secret
    return out


def _delivery(d: WebhookDelivery) -> dict:
    """schemas.DeliveryOut"""
    return {"id": d.id, "object": "webhook_delivery", "event_type": d.event_type, "status": d.status,
            "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error,
            "next_attempt_at": wire.ts(d.next_attempt_at), "created_at": wire.ts(d.created_at),
            "delivered_at": wire.ts(d.delivered_at), "payload": d.payload}


def _check_url(url, cfg) -> None:
    """Refuse, early, a URL that names an internal address (db/egress.py); the deliverer checks
    the resolved address again before every attempt."""
    if url is None:
        return
    try:
        egress.check_url(url, cfg.webhook_allowed_networks)
    except egress.Refused as exc:
        raise Problem(422, "validation-error", "Request is not valid", f"url: {exc}",
                      errors=[{"field": "url", "message": str(exc)}])


def _load(s: Session, p: Principal, endpoint_id: str) -> WebhookEndpoint:
    return crud.owned(s, WebhookEndpoint, endpoint_id, p.tenant_id, "webhook endpoint")


@router.post("", status_code=201, response_model=WebhookOut)
def create_endpoint(body: WebhookCreate, s: Session = Depends(session), cfg=Depends(settings),
                    p: Principal = Depends(require("jobs:write"))):
    _check_url(body.url, cfg)
    e = WebhookEndpoint(tenant_id=p.tenant_id, url=body.url, events=list(dict.fromkeys(body.events)),
                        secret=webhooks.new_secret())
    s.add(e)
    s.commit()
    return wire.JSON(_out(e, secret=True), status_code=201)


@router.get("", response_model=Page)
def list_endpoints(s: Session = Depends(session), p: Principal = Depends(require("jobs:read"))):
    rows = crud.listed(s, WebhookEndpoint, p.tenant_id, WebhookEndpoint.created_at, WebhookEndpoint.id)
    return wire.JSON(wire.page([_out(e) for e in rows], False))


@router.get("/{endpoint_id}", response_model=WebhookOut)
def get_endpoint(endpoint_id: str, s: Session = Depends(session), p: Principal = Depends(require("jobs:read"))):
    return wire.JSON(_out(_load(s, p, endpoint_id)))


@router.patch("/{endpoint_id}", response_model=WebhookOut)
def update_endpoint(endpoint_id: str, body: WebhookUpdate, s: Session = Depends(session), cfg=Depends(settings),
                    p: Principal = Depends(require("jobs:write"))):
    _check_url(body.url, cfg)
    e = _load(s, p, endpoint_id)
    crud.apply(e, body, lambda field, value: list(dict.fromkeys(value)) if field == "events" else value)
    s.commit()
    return wire.JSON(_out(e))


@router.delete("/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: str, s: Session = Depends(session), p: Principal = Depends(require("jobs:write"))):
    s.delete(_load(s, p, endpoint_id))
    s.commit()


@router.get("/{endpoint_id}/deliveries", response_model=Page)
def list_deliveries(endpoint_id: str, limit: int = Query(50, ge=1, le=100), s: Session = Depends(session),
                    p: Principal = Depends(require("jobs:read"))):
    """Newest first: every message, its attempts and the last answer."""
    e = _load(s, p, endpoint_id)
    return wire.JSON(wire.page([_delivery(d) for d in webhooks.last_deliveries(s, e.id, limit)], False))


@router.post("/{endpoint_id}/deliveries/{delivery_id}/retry", response_model=DeliveryOut)
def retry_delivery(endpoint_id: str, delivery_id: str, s: Session = Depends(session),
                   p: Principal = Depends(require("jobs:write"))):
    """Send a message again now (same webhook-id, so a receiver that has it can dedupe)."""
    e = _load(s, p, endpoint_id)
    d = s.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == e.id))
    if d is None:
        raise Problem(404, "not-found", "Delivery not found", f"no delivery {delivery_id}")
    webhooks.retry_now(d)
    s.commit()
    return wire.JSON(_delivery(d))
