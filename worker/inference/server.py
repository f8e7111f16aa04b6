"""A small OpenAI-compatible HTTP server around the local engine, speaking the same dialect
as vLLM's server: `/v1/chat/completions` (plain and SSE), `/v1/models`, and the dynamic
LoRA endpoints `/v1/load_lora_adapter` and `/v1/unload_lora_adapter`. The platform talks
to this and to a real vLLM the same way.

Standard library HTTP; it listens on localhost and trusts its caller (the platform).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worker.inference.engine import BadRequest, Engine, Sampling, UnknownModel

log = logging.getLogger("worker.inference")

MAX_BODY_BYTES = 4 * 1024 * 1024


def make_handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

        # --- plumbing
        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _text(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, type_: str = "BadRequestError") -> None:
            self._json(
                status,
                {"error": {"message": message, "type": type_, "param": None, "code": status}},
            )

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise BadRequest("request body too large")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError as exc:
                raise BadRequest("the body is not JSON") from exc
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            return body

        # --- routes
        def do_GET(self) -> None:
            if self.path == "/health":
                self._text(200, "")
            elif self.path == "/v1/models":
                now = int(time.time())
                data = [
                    {"id": name, "object": "model", "created": now, "owned_by": "ecolink"}
                    for name in engine.models()
                ]
                self._json(200, {"object": "list", "data": data})
            else:
                self._error(404, f"no route {self.path}", "NotFoundError")

        def do_POST(self) -> None:
            try:
                body = self._body()
                if self.path == "/v1/load_lora_adapter":
                    self._load(body)
                elif self.path == "/v1/unload_lora_adapter":
                    self._unload(body)
                elif self.path == "/v1/chat/completions":
                    self._chat(body)
                else:
                    self._error(404, f"no route {self.path}", "NotFoundError")
            except BadRequest as exc:
                self._error(400, str(exc))
            except UnknownModel as exc:
                self._error(404, f"The model `{exc}` does not exist.", "NotFoundError")

        def _load(self, body: dict[str, Any]) -> None:
            name, path = body.get("lora_name"), body.get("lora_path")
            if not isinstance(name, str) or not isinstance(path, str) or not name or not path:
                raise BadRequest("lora_name and lora_path are required")
            if not engine.load_adapter(name, path):
                # vLLM's answer to a second load of the same name.
                raise BadRequest(f"The lora adapter '{name}' has already been loaded.")
            self._text(200, f"Success: LoRA adapter '{name}' added successfully.")

        def _unload(self, body: dict[str, Any]) -> None:
            name = body.get("lora_name")
            if not isinstance(name, str) or not name:
                raise BadRequest("lora_name is required")
            if not engine.unload_adapter(name):
                self._error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
                return
            self._text(200, f"Success: LoRA adapter '{name}' removed successfully.")

        def _chat(self, body: dict[str, Any]) -> None:
            model = body.get("model")
            if not isinstance(model, str):
                raise BadRequest("model is required")
            sampling = Sampling.from_request(body, limit=engine.context_length)
            messages = body.get("messages")
            if not isinstance(messages, list):
                raise BadRequest("messages must be a non-empty list")
            pieces = engine.generate(model, messages, sampling)
            request_id = f"chatcmpl-{uuid.uuid4().hex}"
            created = int(time.time())
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._stream(pieces, request_id, created, model, include_usage)
                return
            text, last = "", None
            for piece in pieces:
                text += piece.text
                last = piece
            assert last is not None
            self._json(
                200,
                {
                    "id": request_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": last.finish_reason,
                            "logprobs": None,
                        }
                    ],
                    "usage": _usage(last),
                },
            )

        def _stream(self, pieces, request_id: str, created: int, model: str, usage: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            def chunk(delta: dict, finish: str | None = None, **extra: Any) -> None:
                data = {
                    "id": request_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra,
                }
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

            chunk({"role": "assistant", "content": ""})
            for piece in pieces:
                if piece.text:
                    chunk({"content": piece.text})
                if piece.finish_reason:
                    chunk({}, piece.finish_reason)
                    if usage:
                        data = {
                            "id": request_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": _usage(piece),
                        }
                        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


def _usage(piece: Any) -> dict[str, int]:
    return {
        "prompt_tokens": piece.prompt_tokens,
        "completion_tokens": piece.completion_tokens,
        "total_tokens": piece.prompt_tokens + piece.completion_tokens,
    }


def serve(engine: Engine, host: str, port: int) -> ThreadingHTTPServer:
    """A started-but-not-serving server bound to (host, port); call serve_forever()."""
    server = ThreadingHTTPServer((host, port), make_handler(engine))
    server.daemon_threads = True
    return server
