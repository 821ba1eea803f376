"""The JSON error replies of Tocsin's HTTP endpoints (transactions and labels): one shape,
``{"error": ..., "field": ..., "index": ...}``, so a client can show which field was wrong."""

from __future__ import annotations

import orjson


def json_error(status: int, error: str, field: str | None = None, index: int | None = None):
    from aiohttp import web

    body: dict[str, object] = {"error": error, "field": field}
    if index is not None:
        body["index"] = index
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
