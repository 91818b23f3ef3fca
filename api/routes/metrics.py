"""GET /metrics: Prometheus exposition of this API process (requests by route template and
status, latency histograms) and of the jobs in the database by status and method, counted by
one GROUP BY at scrape time. Unauthenticated like every scrape target: it names no tenant, job
or key; keep the port off the public network if counts are sensitive."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy import func, select

from db import metrics
from db.models import Job

from ..deps import session

router = APIRouter(tags=["health"])


class JobCounts:
    """A collector that reads the jobs table when scraped."""

    def __init__(self, session):
        self.session = session

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("topiary_jobs", "Jobs in the database by status and method", labels=["status", "method"])
        for status, method, count in self.session.execute(
                select(Job.status, Job.method, func.count()).group_by(Job.status, Job.method)):
            family.add_metric([status, method], count)
        yield family


@router.get("/metrics", include_in_schema=False)
def scrape(s=Depends(session)):
    body, content_type = metrics.exposition([JobCounts(s)])
    return Response(body, media_type=content_type)
