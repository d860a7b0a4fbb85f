# A `wasi:http/proxy@0.2.10` hello component in Python, for the host's
# integration tests. Built by build.sh with componentize-py.
#
#   any path ending in /json -> 200 application/json
#       {"lang":"py","path":"<path with query>","method":"<METHOD>","version":"<VERSION>"}
#   anything else            -> 200 text/html, <h1>Hello from Python</h1> and the path
#
# build.sh replaces the VERSION line below with the value of $APP_VERSION.
VERSION = "1"

import html
import json

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Other,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# wasi:io output streams take at most 4096 bytes per blocking-write-and-flush.
CHUNK = 4096


def method_name(method) -> str:
    # A `method` variant: Method_Get() ... or Method_Other(value="PURGE").
    if isinstance(method, Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


def respond(response_out: ResponseOutparam, status: int, content_type: str, text: str) -> None:
    data = text.encode("utf-8")
    headers = Fields.from_list([("content-type", content_type.encode("ascii"))])
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    # The stream is a child of the body: drop it before finishing the body.
    with body.write() as stream:
        for off in range(0, len(data), CHUNK):
            stream.blocking_write_and_flush(data[off : off + CHUNK])
    OutgoingBody.finish(body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path_with_query = request.path_with_query() or "/"
        method = method_name(request.method())
        path = path_with_query.split("?", 1)[0]

        if path.endswith("/json"):
            body = json.dumps(
                {"lang": "py", "path": path_with_query, "method": method, "version": VERSION},
                separators=(",", ":"),
                ensure_ascii=False,
            )
            respond(response_out, 200, "application/json", body)
            return

        page = (
            '<!doctype html>\n<html><head><meta charset="utf-8"><title>Hello</title></head>\n'
            "<body><h1>Hello from Python</h1>\n"
            f"<p>path: <code>{html.escape(path_with_query)}</code></p>\n"
            f"<p>method: {html.escape(method)}, version: {html.escape(VERSION)}</p>\n"
            "</body></html>\n"
        )
        respond(response_out, 200, "text/html; charset=utf-8", page)
