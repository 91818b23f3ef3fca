"""Response bodies built straight from table rows, encoded with orjson and sent as is.

The schemas in `schemas.py` still document every response (OpenAPI) and the schemathesis suite
checks that these bodies conform to them; returning a ready Response skips FastAPI's second
validation and serialization pass, which cost more CPU than the database work of a GET."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from db.resources import job, ts  # noqa: F401  (the API's response bodies are these)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """The list envelope (schemas.Page)."""
    return {"object": "list", "data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}
