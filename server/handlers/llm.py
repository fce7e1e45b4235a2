"""llm: the AI gateway's data plane, OpenAI- and Anthropic-compatible.

The workspace and routes are read in the request's transaction; the call itself (rate limit,
cache, upstreams, the stream) runs after it has ended (``AfterCommit``), in the engine
(``server.gateway``), whose answers and errors are the APIs' native ones.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from server.domain.gateway_access import gateway_call
from server.gateway.engine import Api
from server.gateway.responses import to_response
from server.runtime.context import AfterCommit, Request


def _calls(req: Request) -> Any:
    return gateway_call(
        req.work,
        req.principal,
        req.headers.get("X-Workspace-Id"),
        routes=req.state.gateway_routes,
    )


def _no_cache(req: Request) -> bool:
    directives = str(req.headers.get("Cache-Control") or "").lower()
    return any(d.strip().startswith(("no-cache", "no-store")) for d in directives.split(","))


def _chat(req: Request, api: Api) -> AfterCommit:
    caller, routes = _calls(req)
    body = req.body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    no_cache = _no_cache(req)
    engine = req.state.gateway

    def answer() -> Response:
        return to_response(
            engine.serve(api, caller, body, routes, no_cache=no_cache, request_id=req.request_id)
        )

    return AfterCommit(answer)


def get_models(req: Request) -> AfterCommit:
    """The models a client may ask for (OpenAI's list format)."""
    caller, routes = _calls(req)
    engine = req.state.gateway
    return AfterCommit(lambda: to_response(engine.models(caller, routes)))


def create_chat_completion(req: Request) -> AfterCommit:
    """OpenAI's chat completions, routed, translated, cached and streamed."""
    return _chat(req, "openai")


def create_message(req: Request) -> AfterCommit:
    """Anthropic's messages, routed, translated, cached and streamed."""
    return _chat(req, "anthropic")
