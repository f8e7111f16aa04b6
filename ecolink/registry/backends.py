"""Inference backends: how the platform attaches adapters to a model instance and asks it
for chat completions.

Both backends talk to an OpenAI-compatible server with vLLM's dynamic LoRA endpoints
(`POST /v1/load_lora_adapter`, `POST /v1/unload_lora_adapter`):
- `local`: EcoLink's own server (`python -m worker.inference`, transformers + peft on the
  CPU or one GPU), started next to the platform;
- `vllm`: a vLLM server started with `--enable-lora` and
  `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`, which must see the adapter folders at the same
  paths (a shared volume).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Protocol

from ecolink.registry.models import ModelInstance

# Seconds to wait for a server to answer (a CPU generation of a few hundred tokens
# finishes well within this; a stream only waits this long between two chunks).
TIMEOUT = 120


class BackendError(Exception):
    """The instance could not be reached or refused the call."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AdapterNotLoaded(BackendError):
    """The instance does not know the model name (e.g. it restarted and lost its adapters)."""


class InferenceBackend(Protocol):
    def load_adapter(self, instance: ModelInstance, *, name: str, path: str) -> None:
        """Attach the LoRA adapter at `path` as `name`; attaching it twice is not an error."""

    def unload_adapter(self, instance: ModelInstance, *, name: str) -> None:
        """Detach `name`; detaching an unknown name is not an error."""

    def chat(self, instance: ModelInstance, payload: dict[str, Any]) -> dict[str, Any]:
        """A non-streaming chat completion; `payload["model"]` is the served name."""

    def chat_stream(
        self, instance: ModelInstance, payload: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """The chunks of a streaming chat completion, usage chunk included."""


class OpenAICompatibleBackend:
    """HTTP client for a server with the OpenAI chat API and vLLM's LoRA endpoints."""

    already_loaded_marker = "already been loaded"

    def _url(self, instance: ModelInstance, path: str) -> str:
        return instance.endpoint_url.rstrip("/") + path

    def _post(self, instance: ModelInstance, path: str, body: dict[str, Any], *, stream=False):
        request = urllib.request.Request(  # noqa: S310 - the operator's configured URL
            self._url(instance, path),
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Accept": "text/event-stream" if stream else "application/json",
            },
            method="POST",
        )
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            raise BackendError(_error_message(text), status=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise BackendError(f"instance {instance.name} is unreachable: {exc}") from None

    def load_adapter(self, instance: ModelInstance, *, name: str, path: str) -> None:
        try:
            self._post(
                instance, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}
            ).close()
        except BackendError as exc:
            if exc.status == 400 and self.already_loaded_marker in str(exc):
                return
            raise

    def unload_adapter(self, instance: ModelInstance, *, name: str) -> None:
        try:
            self._post(instance, "/v1/unload_lora_adapter", {"lora_name": name}).close()
        except BackendError as exc:
            if exc.status == 404:
                return
            raise

    def chat(self, instance: ModelInstance, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            with self._post(instance, "/v1/chat/completions", {**payload, "stream": False}) as r:
                return json.loads(r.read())
        except BackendError as exc:
            raise _not_loaded(exc, payload) from None

    def chat_stream(
        self, instance: ModelInstance, payload: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        body = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        try:
            response = self._post(instance, "/v1/chat/completions", body, stream=True)
        except BackendError as exc:
            raise _not_loaded(exc, payload) from None
        return _sse_events(response)


class LocalBackend(OpenAICompatibleBackend):
    """EcoLink's own server (`python -m worker.inference`) on this machine."""


class VllmBackend(OpenAICompatibleBackend):
    """A vLLM OpenAI-compatible server with runtime LoRA updating enabled."""


BACKENDS: dict[str, InferenceBackend] = {
    ModelInstance.Backend.LOCAL: LocalBackend(),
    ModelInstance.Backend.VLLM: VllmBackend(),
}


def backend_for(instance: ModelInstance) -> InferenceBackend:
    return BACKENDS[instance.backend]


def _sse_events(response) -> Iterator[dict[str, Any]]:
    """The JSON objects of a `data: ...` event stream, until `data: [DONE]`."""
    with response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            event = json.loads(data)
            if "error" in event:
                raise BackendError(_error_message(data))
            yield event


def _error_message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or body.get("message") or text)[:300]
        return str(body.get("message") or error)[:300]
    return text[:300]


def _not_loaded(exc: BackendError, payload: dict[str, Any]) -> BackendError:
    if exc.status == 404:
        return AdapterNotLoaded(f"{payload.get('model')} is not loaded", status=404)
    return exc
