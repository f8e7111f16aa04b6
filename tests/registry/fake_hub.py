"""A fake Hugging Face Hub: just enough of its HTTP API for `create_repo` and
`upload_folder` (files committed inline as base64), recording every request."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeHub:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    # repo id -> {path: bytes}
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    fail_commit_with: tuple[int, str] | None = None


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            hub.requests.append(
                Recorded(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
            )
            return body

        def do_GET(self):
            self._record()
            self._reply(404, {"error": f"fake hub has no GET {self.path}"})

        def do_POST(self):
            body = self._record()
            parts = self.path.split("?")[0].strip("/").split("/")
            if self.path.startswith("/api/validate-yaml"):
                self._reply(200, {"errors": [], "warnings": []})
            elif self.path.startswith("/api/repos/create"):
                data = json.loads(body)
                owner = data.get("organization") or data.get("namespace") or ""
                repo = f"{owner}/{data['name']}".lstrip("/")
                hub.repos[repo] = data
                self._reply(200, {"url": f"{hub.url}/{repo}", "name": repo})
            elif len(parts) >= 6 and parts[0] == "api" and parts[4] == "preupload":
                repo = f"{parts[2]}/{parts[3]}"
                files = json.loads(body)["files"]
                self._reply(
                    200,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                            for f in files
                        ],
                        "commitOid": "0" * 40,
                    },
                )
            elif len(parts) >= 6 and parts[0] == "api" and parts[4] == "commit":
                repo = f"{parts[2]}/{parts[3]}"
                if hub.fail_commit_with:
                    status, message = hub.fail_commit_with
                    self._reply(status, {"error": message})
                    return
                stored = hub.files.setdefault(repo, {})
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        value = item["value"]
                        stored[value["path"]] = base64.b64decode(value["content"])
                oid = hashlib.sha256(body).hexdigest()[:40]
                self._reply(
                    200,
                    {
                        "commitUrl": f"{hub.url}/{repo}/commit/{oid}",
                        "commitOid": oid,
                        "success": True,
                    },
                )
            else:
                self._reply(404, {"error": f"fake hub has no POST {self.path}"})

    return Handler


def start_fake_hub() -> tuple[FakeHub, ThreadingHTTPServer]:
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hub, server
