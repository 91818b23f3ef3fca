"""Small pieces shared by the tenant-owned resources (schedules, webhook endpoints, models)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .problems import Problem

T = TypeVar("T")


def owned(s: Session, table: type[T], object_id: str, tenant_id: str, noun: str) -> T:
    """The tenant's row with this id; another tenant's row is as missing as no row (404)."""
    row = s.scalar(select(table).where(table.id == object_id, table.tenant_id == tenant_id))
    if row is None:
        raise Problem(404, "not-found", f"{noun.capitalize()} not found", f"no {noun} {object_id}")
    return row


def listed(s: Session, table: type[T], tenant_id: str, *order_by: Any) -> list[T]:
    """All of the tenant's rows, in the given order (these collections are small: no pagination)."""
    return list(s.scalars(select(table).where(table.tenant_id == tenant_id).order_by(*order_by)))


def add_named(s: Session, row: Any, noun: str) -> None:
    """Insert a row whose name is unique per tenant: 409 name-taken when it is not."""
    s.add(row)
    try:
        s.commit()
    except IntegrityError:
        s.rollback()
        raise Problem(409, "name-taken", "Name taken", f"a {noun} named {row.name} exists")


def apply(row: Any, update: BaseModel, convert: Callable[[str, Any], Any] | None = None) -> None:
    """Copy the fields a PATCH body sets onto the row."""
    for field, value in update.model_dump(exclude_none=True).items():
        setattr(row, field, convert(field, value) if convert else value)
