"""The baseline: a bare Starlette app that only reads the body and answers 202."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    await request.body()
    return Response(b'{"ok":true}', 202, media_type="application/json")


app = Starlette(routes=[Route("/webhooks/{connector_id}", receive, methods=["POST"])])
