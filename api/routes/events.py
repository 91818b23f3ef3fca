"""Job events: a paginated list, or with `Accept: text/event-stream` a live SSE stream that
resumes from Last-Event-ID and ends after the terminal status event."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from db import jobs
from db import status as st
from db.engine import sessionmaker_for

from .. import wire
from ..deps import Principal, require, session
from ..schemas import Page
from .jobs import load_job

router = APIRouter(prefix="/v1/jobs", tags=["events"])
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 0.25


def _out(e) -> dict:
    """schemas.EventOut"""
    return {"id": e.id, "object": "pruning_job.event", "type": e.type, "data": e.data, "created_at": wire.ts(e.created_at)}


def _is_terminal(event) -> bool:
    return event.type == "status" and event.data.get("status") in st.TERMINAL


@router.get("/{job_id}/events", response_model=Page,
            responses={200: {"content": {"text/event-stream": {}}, "description": "list, or SSE stream"}})
def list_events(job_id: str, request: Request, s=Depends(session), p: Principal = Depends(require("jobs:read")),
                after: int = Query(0, ge=0, le=2**62), limit: int = Query(100, ge=1, le=1000),
                last_event_id: str | None = Header(None, max_length=20)):
    job = load_job(s, p, job_id)
    if "text/event-stream" in request.headers.get("accept", ""):
        start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
        return StreamingResponse(_stream(request, job.id, start), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    rows = jobs.events_after(s, job.id, after, limit + 1)
    return wire.JSON(wire.page([_out(e) for e in rows[:limit]], len(rows) > limit))


async def _stream(request: Request, job_id: str, after: int):
    """Poll the database (the source of truth) and forward new events; a comment line every
    HEARTBEAT_SECONDS keeps proxies from closing an idle stream."""
    maker = sessionmaker_for(request.app.state.settings.db_url)

    def fetch(last: int):
        """New events, and whether the stream is over: the client already has the terminal event
        (it resumed from an id at or past it), so nothing newer can ever come."""
        with maker() as s:
            events = jobs.events_after(s, job_id, last, 500)
            if events:
                return events, False
            final = jobs.terminal_event(s, job_id)
            return events, final is not None and final.id <= last

    last, beat = after, time.monotonic()
    while not await request.is_disconnected():
        events, over = await run_in_threadpool(fetch, last)
        if over:
            return
        for e in events:
            last = e.id
            yield f"id: {e.id}\nevent: {e.type}\ndata: {wire.orjson.dumps(_out(e)).decode()}\n\n"
            if _is_terminal(e):
                return
        if time.monotonic() - beat >= HEARTBEAT_SECONDS:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_SECONDS)
