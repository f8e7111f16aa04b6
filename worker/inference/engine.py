"""The local inference engine: one base model loaded once, LoRA adapters attached by name
and switched per request, token-by-token generation for chat messages.

No Django here: this runs in the model-serving process (`python -m worker.inference`).
One request generates at a time (a lock), because switching the active adapter changes
the shared model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UnknownModel(LookupError):
    """The request names neither the base model nor an attached adapter."""


class BadRequest(ValueError):
    """A sampling parameter or message is not acceptable."""


@dataclass
class Sampling:
    """The OpenAI sampling parameters the engine honours."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    @classmethod
    def from_request(cls, body: dict[str, Any], *, limit: int) -> Sampling:
        max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        if max_tokens is None:
            max_tokens = min(256, limit)
        stop = body.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        sampling = cls(
            max_tokens=max_tokens,
            temperature=1.0 if body.get("temperature") is None else body["temperature"],
            top_p=1.0 if body.get("top_p") is None else body["top_p"],
            stop=stop,
            seed=body.get("seed"),
        )
        sampling.check(limit=limit)
        return sampling

    def check(self, *, limit: int) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise BadRequest("max_tokens must be an integer")
        if not 1 <= self.max_tokens <= limit:
            raise BadRequest(f"max_tokens must be between 1 and {limit}")
        if not isinstance(self.temperature, int | float) or not 0 <= self.temperature <= 2:
            raise BadRequest("temperature must be between 0 and 2")
        if not isinstance(self.top_p, int | float) or not 0 < self.top_p <= 1:
            raise BadRequest("top_p must be greater than 0 and at most 1")
        if len(self.stop) > 4 or any(not isinstance(s, str) or not s for s in self.stop):
            raise BadRequest("stop must be a string or up to 4 non-empty strings")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise BadRequest("seed must be an integer")


@dataclass
class Piece:
    """One step of a generation: new text (may be empty) and, at the end, why it stopped."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Engine:
    def __init__(self, model_path: str | Path, *, served_name: str, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.served_name = served_name
        self.device = torch.device(device)
        # transformers types its loaders loosely: both are used as the dynamic objects they are.
        self.tokenizer: Any = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path)
        self.model: Any = model.to(self.device)  # type: ignore[arg-type]  # transformers' .to
        self.model.eval()
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)
        self.eos_ids = self._eos_ids()
        self.adapters: dict[str, str] = {}
        self.lock = threading.Lock()

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            found.add(self.tokenizer.eos_token_id)
        return found

    # --- adapters
    def load_adapter(self, name: str, path: str) -> bool:
        """Attach the LoRA adapter at `path` as `name`; False if it was already attached."""
        from peft import PeftModel

        if not (Path(path) / "adapter_config.json").is_file():
            raise BadRequest(f"no LoRA adapter at {path}")
        with self.lock:
            if name in self.adapters:
                return False
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            self.model.eval()
            self.adapters[name] = path
        return True

    def unload_adapter(self, name: str) -> bool:
        with self.lock:
            if name not in self.adapters:
                return False
            if len(self.adapters) == 1:
                # peft keeps at least one adapter: unwrap back to the bare base model.
                self.model = self.model.unload()
            else:
                if self.model.active_adapter == name:
                    other = next(n for n in self.adapters if n != name)
                    self.model.set_adapter(other)
                self.model.delete_adapter(name)
            del self.adapters[name]
        return True

    def models(self) -> list[str]:
        return [self.served_name, *self.adapters]

    # --- generation
    def prompt_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list")
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in (
                "system",
                "developer",
                "user",
                "assistant",
            ):
                raise BadRequest("each message needs a role: system, user or assistant")
            if not isinstance(message.get("content"), str):
                raise BadRequest("message content must be a string")
        rendered = [
            {"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]}
            for m in messages
        ]
        ids = self.tokenizer.apply_chat_template(
            rendered, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def generate(
        self, model: str, messages: list[dict[str, Any]], sampling: Sampling
    ) -> Iterator[Piece]:
        """Text pieces as they are produced; the last one carries the finish reason and the
        token counts. Checks the request now (raising UnknownModel or BadRequest); the
        iterator holds the engine lock while it generates."""
        if model != self.served_name and model not in self.adapters:
            raise UnknownModel(model)
        prompt = self.prompt_ids(messages)
        if len(prompt) >= self.context_length:
            raise BadRequest(
                f"the prompt is {len(prompt)} tokens; this model's context is {self.context_length}"
            )
        budget = min(sampling.max_tokens, self.context_length - len(prompt))
        return self._generate_locked(model, prompt, budget, sampling)

    def _generate_locked(
        self, model: str, prompt: list[int], budget: int, sampling: Sampling
    ) -> Iterator[Piece]:
        with self.lock:
            if model != self.served_name and model not in self.adapters:
                raise UnknownModel(model)  # unloaded while this request waited
            yield from self._run(model, prompt, budget, sampling)

    def _run(
        self, model: str, prompt: list[int], budget: int, sampling: Sampling
    ) -> Iterator[Piece]:
        import contextlib

        import torch

        generator = torch.Generator(device=self.device)
        if sampling.seed is not None:
            generator.manual_seed(sampling.seed)
        else:
            generator.seed()
        if model == self.served_name:
            adapter_scope = (
                self.model.disable_adapter() if self.adapters else contextlib.nullcontext()
            )
        else:
            self.model.set_adapter(model)
            adapter_scope = contextlib.nullcontext()

        text, sent, produced, finish = "", 0, [], "length"
        with adapter_scope, torch.inference_mode():
            input_ids = torch.tensor([prompt], device=self.device)
            past = None
            for _ in range(budget):
                out = self.model(input_ids=input_ids, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = self._pick(out.logits[0, -1], sampling, generator)
                if token in self.eos_ids:
                    finish = "stop"
                    break
                produced.append(token)
                text = self.tokenizer.decode(produced, skip_special_tokens=True)
                cut = _first_stop(text, sampling.stop)
                if cut is not None:
                    text, finish = text[:cut], "stop"
                    break
                # Hold back a partial UTF-8 character or a possible start of a stop string.
                safe = len(text) - _held_back(text, sampling.stop)
                if safe > sent:
                    yield Piece(text[sent:safe])
                    sent = safe
                input_ids = torch.tensor([[token]], device=self.device)
        yield Piece(
            text[sent:],
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=len(produced) + (1 if finish == "stop" else 0),
        )

    @staticmethod
    def _pick(logits: Any, sampling: Sampling, generator: Any) -> int:
        import torch

        if sampling.temperature == 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
        if sampling.top_p < 1:
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < sampling.top_p
            sorted_probs = sorted_probs * keep
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))


def _first_stop(text: str, stops: list[str]) -> int | None:
    found = [text.find(s) for s in stops if s in text]
    return min(found) if found else None


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters must wait: a replacement character (an incomplete
    UTF-8 sequence) or a suffix that might grow into a stop string."""
    hold = 1 if text.endswith("\ufffd") else 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                hold = max(hold, n)
                break
    return hold
