"""A small, real OpenAI-compatible HTTP server on 127.0.0.1 for LLM tests.

Fakes live only at the network edge: the code under test talks to this server through
litellm and httpx exactly as it would talk to OpenAI, llama.cpp or vLLM. Each test scripts
the replies (`server.script(Reply(...), ...)`, consumed in order; `server.default` after
that) and reads back what was asked (`server.requests`).

    with FakeLLMServer() as server:
        server.script(Reply(content='{"tags": []}'), Reply(status=429), ...)
        tagger = LLMTagger(rubric, "openai/fake-model", api_base=server.api_base, api_key="test")
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    """One scripted answer to one `/v1/chat/completions` request."""

    content: str = '{"tags": []}'
    status: int = 200
    delay_s: float = 0.0  # sleep before answering (timeouts)
    hold: threading.Event | None = None  # answer only once this is set (coalescing)
    prompt_tokens: int = 120
    completion_tokens: int = 30
    raw_body: str | None = None  # sent as-is instead of a completion (malformed HTTP bodies)
    headers: dict[str, str] = field(default_factory=dict)
    # Called with the parsed request body; its return value replaces `content`.
    content_fn: Callable[[dict[str, Any]], str] | None = None
    timings: dict[str, Any] | None = None  # llama.cpp's per-request `timings` object, sent when set


@dataclass
class Recorded:
    body: dict[str, Any]
    at: float  # time.monotonic() when the request arrived

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def prompt(self) -> str:
        """All message texts joined: what the model was shown."""
        parts = []
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, list):  # content parts
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(str(content or ""))
        return "\n".join(parts)


class FakeLLMServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.default = Reply()
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        self._holds: list[threading.Event] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-llm", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeLLMServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        for hold in self._holds:
            hold.set()  # let held handlers finish so no thread lingers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            for reply in replies:
                if reply.hold is not None:
                    self._holds.append(reply.hold)
            self._queue.extend(replies)

    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def wait_for_calls(self, n: int, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.calls() >= n:
                return True
            time.sleep(0.005)
        return False

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(Recorded(body=body, at=time.monotonic()))
            return self._queue.pop(0) if self._queue else self.default


def _completion(body: dict[str, Any], reply: Reply, content: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(reply),
        **({"timings": reply.timings} if reply.timings is not None else {}),
    }


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _chunks(body: dict[str, Any], reply: Reply, content: str) -> list[dict[str, Any]]:
    """The SSE chunks of a streamed completion: role, content in pieces, stop, usage."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
    }
    pieces = [content[i : i + 7] for i in range(0, len(content), 7)] or [""]
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _usage(reply)})
    return chunks


def _handler_for(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(400, json.dumps({"error": {"message": "request body is not JSON"}}))
                return
            reply = server._next(body)
            if reply.hold is not None:
                reply.hold.wait(timeout=30)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            try:
                self._answer(body, reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to do

        def _answer(self, body: dict[str, Any], reply: Reply) -> None:
            if reply.raw_body is not None:
                self._send(reply.status, reply.raw_body, headers=reply.headers)
                return
            if reply.status != 200:
                kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
                error = {"error": {"message": f"fake {reply.status}", "type": kind, "code": kind}}
                self._send(reply.status, json.dumps(error), headers=reply.headers)
                return
            content = reply.content_fn(body) if reply.content_fn else reply.content
            if body.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in _chunks(body, reply, content):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(200, json.dumps(_completion(body, reply, content)), headers=reply.headers)

        def _send(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

    return Handler
