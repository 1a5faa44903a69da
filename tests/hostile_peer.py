"""A hostile peer for fault tests, run as its own process: ``python -m tests.hostile_peer PORT MODE``.

It hands out a token to anyone (the asking node cannot tell), then answers every
document with valid N-Triples that never end (``endless``: chunked, no length) or that
end after 500 MB (``huge``: with a ``Content-Length``). ``GET /stats`` says how many bytes
it has sent; with ``--hold`` it stops after the first megabyte until ``POST /release``,
so that a test can look at the asking node while it holds a peer's open stream.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_LINE = b'<https://data.p001.example/id/x/%d> <https://vocab.dsgo.example/def#note> "%s" .\n'
_HUGE = 500 << 20


def app(mode: str, hold: bool) -> Starlette:
    sent = [0]
    released = asyncio.Event()
    if not hold:
        released.set()

    async def body(limit: int | None) -> AsyncIterator[bytes]:
        i = 0
        while limit is None or sent[0] < limit:
            chunk = b"".join(_LINE % (i + k, b"x" * 40) for k in range(500))
            if limit is not None:
                chunk = chunk[: limit - sent[0]]
            i += 500
            sent[0] += len(chunk)
            yield chunk
            if sent[0] >= 1 << 20:
                await released.wait()
            await asyncio.sleep(0)  # a set event does not yield: let the server see a hang-up

    async def document(request: Request) -> Response:
        if mode == "huge":
            headers = {"content-length": str(_HUGE)}
            return StreamingResponse(body(_HUGE), media_type="application/n-triples", headers=headers)
        return StreamingResponse(body(None), media_type="application/n-triples")

    async def token(request: Request) -> Response:
        return JSONResponse({"access_token": "anything", "token_type": "Bearer", "expires_in": 3600})

    async def stats(request: Request) -> Response:
        return JSONResponse({"sent": sent[0]})

    async def release(request: Request) -> Response:
        released.set()
        return JSONResponse({})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ready"})

    async def absent(request: Request) -> Response:
        return Response(status_code=404)

    return Starlette(
        routes=[
            Route("/connect/token", token, methods=["POST"]),
            Route("/health", health),
            Route("/stats", stats),
            Route("/release", release, methods=["POST"]),
            Route("/capabilities", absent),
            Route("/{path:path}", document),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("mode", choices=["endless", "huge"])
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()
    uvicorn.run(app(args.mode, args.hold), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
