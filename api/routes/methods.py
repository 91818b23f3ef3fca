"""GET /v1/methods: every pruning method with its options, defaults and descriptions, served from
the job spec's registry (pruning_core.spec) that also checks submissions."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from pruning_core.spec import DECLARED

from .. import wire
from ..deps import Principal, require

router = APIRouter(prefix="/v1/methods", tags=["methods"])


@router.get("")
def list_methods(p: Principal = Depends(require("jobs:read"))):
    """Each method: summary, the statistics it reads (none, norms, gram), whether it quantizes
    jointly, and its options (name, type, default, range, description)."""
    return wire.JSON({"object": "list", "data": [m.describe() for m in DECLARED.values()]})
