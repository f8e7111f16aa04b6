"""A fake vLLM OpenAI server: records every call, keeps the set of loaded LoRA names, and
answers like vLLM (plain-text success, 400 for a second load, 404 for an unknown unload
or model)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeVllm:
    url: str = ""
    base_name: str = "base"
    calls: list[tuple[str, str, dict]] = field(default_factory=list)
    loras: dict[str, str] = field(default_factory=dict)


def _handler(fake: FakeVllm):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status, body, content_type="application/json"):
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status, message):
            self._send(status, {"error": {"message": message, "type": "Error", "code": status}})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.calls.append(("POST", self.path, body))
            if self.path == "/v1/load_lora_adapter":
                name = body["lora_name"]
                if name in fake.loras:
                    self._error(400, f"The lora adapter '{name}' has already been loaded.")
                    return
                fake.loras[name] = body["lora_path"]
                self._send(200, f"Success: LoRA adapter '{name}' added successfully.", "text/plain")
            elif self.path == "/v1/unload_lora_adapter":
                if fake.loras.pop(body["lora_name"], None) is None:
                    self._error(404, f"The lora adapter '{body['lora_name']}' cannot be found.")
                    return
                self._send(200, "Success", "text/plain")
            elif self.path == "/v1/chat/completions":
                model = body["model"]
                if model != fake.base_name and model not in fake.loras:
                    self._error(404, f"The model `{model}` does not exist.")
                    return
                text = f"hello from {model}"
                usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
                if not body.get("stream"):
                    self._send(
                        200,
                        {
                            "id": "chatcmpl-vllm",
                            "object": "chat.completion",
                            "created": 1,
                            "model": model,
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": usage,
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                base = {"id": "chatcmpl-vllm", "object": "chat.completion.chunk", "model": model}
                for delta, finish in (
                    ({"role": "assistant"}, None),
                    ({"content": text}, None),
                    ({}, "stop"),
                ):
                    chunk = {
                        **base,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                if (body.get("stream_options") or {}).get("include_usage"):
                    self.wfile.write(
                        f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
                    )
                self.wfile.write(b"data: [DONE]\n\n")
            else:
                self._error(404, "not found")

    return Handler


def start_fake_vllm(base_name: str) -> tuple[FakeVllm, ThreadingHTTPServer]:
    fake = FakeVllm(base_name=base_name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, server
