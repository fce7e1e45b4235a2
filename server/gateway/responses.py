"""Gateway answers as Flask responses: the one module of the engine that knows Flask.

A whole answer is compact JSON; a stream is ``text/event-stream`` whose frames are produced as
the WSGI server sends them (the request's transaction has ended by then). What the answer
does once sent (``Answer.after_sending``: the call's log entry queued for the engine's writer)
runs when the server closes the response: after its last byte, or when the client went away.
"""

from __future__ import annotations

import orjson
from flask import Response

from server.gateway.engine import Answer

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


def to_response(answer: Answer) -> Response:
    """The response that sends ``answer``."""
    if answer.frames is not None:
        response = Response(answer.frames, status=answer.status, content_type=EVENT_STREAM)
    else:
        response = Response(orjson.dumps(answer.body), status=answer.status, content_type=JSON)
    for name, value in answer.headers.items():
        response.headers[name] = value
    response.call_on_close(answer.after_sending())
    return response
