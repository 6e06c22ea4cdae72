"""Control: a raw ASGI app on uvicorn that reads the body and answers 202 the way the
gateway's webhook path does: the floor any Python gateway on uvicorn starts from."""

from starlette.types import Receive, Scope, Send

from gateway.app import _answer


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if not message.get("more_body", False):
            break
    await _answer(send, 202, b'{"event_ids":["x"]}', "rid")
