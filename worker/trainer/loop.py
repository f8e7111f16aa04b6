"""The training loop: exact effective batches with token-normalised gradient accumulation
and out-of-memory backoff, SFT or DPO loss, evaluation with early stopping, atomic
checkpoints with exact resume, and a graceful stop after the current step."""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from worker.trainer import checkpoint
from worker.trainer.batching import (
    collate,
    flatten,
    micro_batches,
    rank_share,
    step_items,
)
from worker.trainer.config import ConfigError, RunConfig
from worker.trainer.data import TokenizedData
from worker.trainer.distributed import Dist
from worker.trainer.events import EventReporter
from worker.trainer.faults import Faults
from worker.trainer.losses import dpo_loss, sequence_logps, sft_loss_sum
from worker.trainer.microbatch import MicroBatching
from worker.trainer.modeling import autocast_dtype, is_peft, load_weights, save_weights
from worker.trainer.signals import StopRequest
from worker.trainer.tracking import Tracker

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Everything about progress that a checkpoint must carry besides tensors."""

    step: int = 0  # optimizer steps done; also the data position (see batching.step_items)
    micro_batch_size: int = 0  # realised, after any out-of-memory backoff
    oom_backoffs: int = 0
    best_eval_loss: float | None = None
    evals_without_improvement: int = 0
    early_stopped: bool = False
    window_loss: float = 0.0  # loss x normaliser summed over the current logging window
    window_norm: float = 0.0
    train_loss: float | None = None  # mean loss of the last complete logging window
    last_eval: dict[str, float] = field(default_factory=dict)
    tokens_seen: int = 0  # real (non-pad) tokens, all ranks
    samples_seen: int = 0


@dataclass
class StepSums:
    loss: float = 0.0  # SFT: summed token cross-entropy; DPO: summed pair losses
    tokens: int = 0
    correct: float = 0.0  # DPO pairs whose chosen reply wins
    margin: float = 0.0  # DPO reward margins, summed


@dataclass
class Outcome:
    stopped: bool  # stopped on request, after writing `checkpoint`
    checkpoint: Path | None
    state: TrainState


def schedule(step: int, *, warmup: int, total: int, kind: str, min_ratio: float) -> float:
    """lr multiplier for `step`: linear warmup, then linear or cosine decay to min_ratio."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    decay = 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * decay


def memory_bytes(device: torch.device) -> int:
    """GPU memory allocated, or the process's resident memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        model: Any,
        *,
        train: TokenizedData,
        validation: TokenizedData | None,
        max_length: int,
        pad_id: int,
        dist: Dist,
        reporter: EventReporter,
        tracker: Tracker | None = None,
        stop: StopRequest | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.train_data = train
        self.validation = validation if validation and validation.items else None
        self.max_length = max_length
        self.pad_id = pad_id
        self.dist = dist
        self.reporter = reporter
        self.tracker = tracker or Tracker()
        self.stop = stop or StopRequest()
        self.faults = faults or Faults()
        self.device = dist.device
        self.dpo = config.objective == "dpo"
        self.pack = config.packing and config.method != "prompt_tuning"
        self.virtual_tokens = (
            config.prompt_tuning.num_virtual_tokens if config.method == "prompt_tuning" else 0
        )
        self.half = autocast_dtype(config, self.device)

        effective = config.effective_batch_size
        if len(train.items) < effective:
            raise ConfigError(
                "effective_batch_size",
                f"{effective} is larger than the {len(train.items)} usable training examples",
            )
        self.steps_per_epoch = len(train.items) // effective
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.warmup_steps = config.warmup_steps or math.ceil(config.warmup_ratio * self.total_steps)
        self.batching = MicroBatching.plan(effective // dist.world_size, config.micro_batch_size)
        self.state = TrainState(micro_batch_size=self.batching.micro)

        self.params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in self.params if p.ndim >= 2]
        no_decay = [p for p in self.params if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=config.learning_rate,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: schedule(
                step,
                warmup=self.warmup_steps,
                total=self.total_steps,
                kind=config.lr_scheduler,
                min_ratio=config.min_lr_ratio,
            ),
        )
        # DPO needs the model as it was; adapters can simply be switched off for that.
        self.reference = None
        if self.dpo and not is_peft(model):
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)
        self._window: dict[str, float] = {}
        self._reset_window()

    # --- the loop -----------------------------------------------------------------------

    def train(self) -> Outcome:
        self.dist.broadcast_parameters(self.params)
        self.reporter.phase(
            "training",
            step=self.state.step,
            total_steps=self.total_steps,
            **self.realised(),
            **{f"train_{k}": v for k, v in self.train_data.stats().items()},
        )
        self.model.train()
        if self.dist.any(self.stop.requested):
            return self._stop()
        while self.state.step < self.total_steps:
            self._run_step()
            if self.dist.any(self.stop.requested):
                return self._stop()
            step = self.state.step
            every = self.config.eval_steps or self.steps_per_epoch
            if self.validation and step % every == 0:
                self.evaluate()
                if self.dist.any(self.stop.requested):  # it came during the evaluation
                    return self._stop()
            if self.config.save_steps and step % self.config.save_steps == 0:
                self.save_checkpoint()
            if self.state.early_stopped:
                log.info("early stopping at step %d", step)
                break
        if self.validation and self.state.last_eval.get("step") != self.state.step:
            self.evaluate()
        return Outcome(stopped=False, checkpoint=None, state=self.state)

    def _stop(self) -> Outcome:
        self.reporter.phase("saving", reason=self.stop.reason or "stop")
        path = self.save_checkpoint(reason=self.stop.reason or "stop")
        return Outcome(stopped=True, checkpoint=path, state=self.state)

    def _run_step(self) -> None:
        started = time.perf_counter()
        config = self.config
        items = step_items(
            self.train_data.items,
            step=self.state.step,
            effective=config.effective_batch_size,
            seed=config.seed,
        )
        share = rank_share(items, self.dist.rank, self.dist.world_size)
        # SFT: mean over every target token of the step; DPO: mean over its pairs.
        local_norm = len(share) if self.dpo else sum(s.num_targets for s in share)
        norm = max(1.0, self.dist.sum([float(local_norm)])[0])
        lr = self.optimizer.param_groups[0]["lr"]
        while True:
            try:
                sums = self._accumulate(share, norm)
                failed = False
            except torch.OutOfMemoryError as exc:
                log.warning("out of memory at micro-batch %d: %s", self.batching.micro, exc)
                failed = True
            if not self.dist.any(failed):
                break
            self._back_off()
        self.dist.sum_gradients(self.params)
        max_norm = config.max_grad_norm if config.max_grad_norm > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss, tokens, samples, correct, margin = self.dist.sum(
            [sums.loss, sums.tokens, len(share), sums.correct, sums.margin]
        )
        if self.faults.step_sleep:
            time.sleep(self.faults.step_sleep)
        self.state.step += 1
        if self.faults.stop_at_step == self.state.step:
            self.stop.request("test")
        self.state.window_loss += loss
        self.state.window_norm += norm
        self.state.tokens_seen += int(tokens)
        self.state.samples_seen += int(samples)
        w = self._window
        w["tokens"] += tokens
        w["samples"] += samples
        w["seconds"] += time.perf_counter() - started
        w["correct"] += correct
        w["margin"] += margin
        if self.state.step % config.logging_steps == 0 or self.state.step == self.total_steps:
            self._log_metrics(lr=lr, grad_norm=grad_norm)

    def _back_off(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        smaller = self.batching.backoff()
        if smaller is None:
            raise torch.OutOfMemoryError("out of memory even with a micro-batch of 1")
        log.warning(
            "micro-batch %d -> %d, gradient accumulation %d -> %d (effective batch unchanged)",
            self.batching.micro,
            smaller.micro,
            self.batching.accum,
            smaller.accum,
        )
        self.batching = smaller
        self.state.micro_batch_size = smaller.micro
        self.state.oom_backoffs += 1

    def _accumulate(self, share: list[Any], norm: float) -> StepSums:
        """Forward and backward over this rank's share of a step, one micro-batch at a time;
        each micro-batch's summed loss is divided by the whole step's normaliser, so the
        gradients do not depend on how the step is split."""
        self.optimizer.zero_grad(set_to_none=True)
        self.faults.check_micro_batch(self.batching.micro)
        sums = StepSums()
        for chunk in micro_batches(share, self.batching.micro):
            batch = self._collate(chunk)
            with self._autocast():
                if self.dpo:
                    policy = sequence_logps(self.model, batch, virtual_tokens=self.virtual_tokens)
                    reference = self._reference_logps(batch)
                    losses, margins = dpo_loss(policy, reference, beta=self.config.dpo.beta)
                    loss = losses.sum()
                    sums.correct += float((margins > 0).sum())
                    sums.margin += float(margins.sum())
                else:
                    loss = sft_loss_sum(self.model, batch, virtual_tokens=self.virtual_tokens)
            (loss / norm).backward()
            sums.loss += float(loss.detach())
            sums.tokens += batch.num_tokens
        return sums

    def _collate(self, chunk: list[Any]) -> Any:
        seqs = flatten(chunk)
        batch = collate(seqs, pack=self.pack, capacity=self.max_length, pad_id=self.pad_id)
        return batch.to(self.device)

    def _reference_logps(self, batch: Any) -> torch.Tensor:
        with torch.no_grad():
            if self.reference is not None:
                return sequence_logps(self.reference, batch)
            was_training = self.model.training
            self.model.eval()
            try:
                with self.model.disable_adapter():
                    return sequence_logps(self.model, batch)
            finally:
                self.model.train(was_training)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.half is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.half)

    # --- metrics and evaluation -----------------------------------------------------------

    def _reset_window(self) -> None:
        self._window = dict.fromkeys(("tokens", "samples", "seconds", "correct", "margin"), 0.0)

    def _log_metrics(self, *, lr: float, grad_norm: float) -> None:
        state, w = self.state, self._window
        state.train_loss = state.window_loss / max(state.window_norm, 1.0)
        state.window_loss = state.window_norm = 0.0
        seconds = max(w["seconds"], 1e-9)
        metrics: dict[str, Any] = {
            "step": state.step,
            "total_steps": self.total_steps,
            "epoch": round(state.step / self.steps_per_epoch, 4),
            "loss": state.train_loss,
            "learning_rate": lr,
            "grad_norm": grad_norm,
            "tokens_per_second": w["tokens"] / seconds,
            "samples_per_second": w["samples"] / seconds,
            "memory_bytes": memory_bytes(self.device),
            "micro_batch_size": self.batching.micro,
            "gradient_accumulation_steps": self.batching.accum,
            "truncated_examples": self.train_data.truncated,
            "tokens_seen": state.tokens_seen,
        }
        if self.dpo and w["samples"]:
            metrics["reward_accuracy"] = w["correct"] / w["samples"]
            metrics["reward_margin"] = w["margin"] / w["samples"]
        self._reset_window()
        if self.dist.is_main:
            log.info(
                "step %d/%d loss %.4f lr %.2e tokens/s %.0f",
                state.step,
                self.total_steps,
                state.train_loss,
                lr,
                metrics["tokens_per_second"],
            )
        self.reporter.emit("metrics", metrics)
        self.tracker.log_metrics(metrics, step=state.step)

    def evaluate(self) -> dict[str, float] | None:
        """Loss and perplexity on the validation split (DPO: the DPO loss, and the
        perplexity of the chosen replies)."""
        if self.validation is None:
            return None
        self.reporter.phase("evaluating", step=self.state.step)
        share = rank_share(self.validation.items, self.dist.rank, self.dist.world_size)
        loss = norm = nll = nll_tokens = correct = 0.0
        self.model.eval()
        with torch.no_grad():
            for chunk in micro_batches(share, self.batching.micro):
                batch = self._collate(chunk)
                with self._autocast():
                    if self.dpo:
                        policy = sequence_logps(
                            self.model, batch, virtual_tokens=self.virtual_tokens
                        )
                        losses, margins = dpo_loss(
                            policy, self._reference_logps(batch), beta=self.config.dpo.beta
                        )
                        loss += float(losses.sum())
                        norm += len(chunk)
                        correct += float((margins > 0).sum())
                        nll -= float(policy[0::2].sum())
                        nll_tokens += sum(pair.chosen.num_targets for pair in chunk)
                    else:
                        loss += float(
                            sft_loss_sum(self.model, batch, virtual_tokens=self.virtual_tokens)
                        )
                        norm += batch.num_targets
        self.model.train()
        loss, norm, nll, nll_tokens, correct = self.dist.sum([loss, norm, nll, nll_tokens, correct])
        eval_loss = loss / max(norm, 1.0)
        token_loss = nll / max(nll_tokens, 1.0) if self.dpo else eval_loss
        result = {
            "step": self.state.step,
            "eval_loss": eval_loss,
            "perplexity": math.exp(min(token_loss, 50.0)),
        }
        if self.dpo:
            result["reward_accuracy"] = correct / max(norm, 1.0)
        self.state.last_eval = result
        self._update_early_stopping(eval_loss)
        self.reporter.emit("eval", result)
        self.tracker.log_metrics(result, step=self.state.step)
        self.reporter.phase("training", step=self.state.step)
        return result

    def _update_early_stopping(self, eval_loss: float) -> None:
        state, config = self.state, self.config
        if (
            state.best_eval_loss is None
            or eval_loss < state.best_eval_loss - config.early_stopping_threshold
        ):
            state.best_eval_loss = eval_loss
            state.evals_without_improvement = 0
            return
        state.evals_without_improvement += 1
        patience = config.early_stopping_patience
        if patience and state.evals_without_improvement >= patience:
            state.early_stopped = True

    def realised(self) -> dict[str, Any]:
        """The batch shape and schedule this run really uses."""
        return {
            "effective_batch_size": self.config.effective_batch_size,
            "micro_batch_size": self.batching.micro,
            "gradient_accumulation_steps": self.batching.accum,
            "world_size": self.dist.world_size,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_steps": self.warmup_steps,
            "max_seq_length": self.max_length,
            "packing": self.pack,
        }

    # --- checkpoints ----------------------------------------------------------------------

    def save_checkpoint(self, reason: str = "scheduled") -> Path | None:
        """Write an atomic checkpoint of the current step (rank 0); every rank must call it."""
        rng = self.dist.gather(_capture_rng(self.device))
        path = None
        if self.dist.is_main:
            root = self.config.checkpoints_path

            def write(folder: Path) -> None:
                save_weights(self.model, folder)
                torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
                torch.save(
                    {"scheduler": self.scheduler.state_dict(), "rng": rng}, folder / "trainer.pt"
                )
                progress = {
                    "state": asdict(self.state),
                    "data_position": {
                        "epoch": self.state.step // self.steps_per_epoch,
                        "step_in_epoch": self.state.step % self.steps_per_epoch,
                        "seed": self.config.seed,
                    },
                    "total_steps": self.total_steps,
                    "world_size": self.dist.world_size,
                }
                (folder / "trainer_state.json").write_text(json.dumps(progress, indent=2))
                (folder / "run_config.json").write_text(self.config.to_json())

            path = checkpoint.save(
                root, self.state.step, write, pause_per_file=self.faults.save_sleep
            )
            checkpoint.prune(root, self.config.keep_last_checkpoints)
            log.info("checkpoint %s", path)
            self.reporter.emit(
                "checkpoint", {"step": self.state.step, "path": str(path), "reason": reason}
            )
        self.dist.barrier()
        return path

    def restore(self, folder: Path) -> None:
        """Continue exactly where the checkpoint in `folder` left off."""
        saved = json.loads((folder / "run_config.json").read_text())
        for key in ("effective_batch_size", "seed", "train_file", "dataset_hash", "method"):
            if saved.get(key) != getattr(self.config, key):
                log.warning(
                    "resuming with a different %s: %r -> %r",
                    key,
                    saved.get(key),
                    getattr(self.config, key),
                )
        load_weights(self.model, folder)
        self.optimizer.load_state_dict(
            torch.load(folder / "optimizer.pt", map_location=self.device, weights_only=True)
        )
        extra = torch.load(folder / "trainer.pt", map_location="cpu", weights_only=True)
        self.scheduler.load_state_dict(extra["scheduler"])
        rngs = extra["rng"]
        _restore_rng(rngs[self.dist.rank] if self.dist.rank < len(rngs) else rngs[0], self.device)
        progress = json.loads((folder / "trainer_state.json").read_text())
        self.state = TrainState(**progress["state"])
        micro = self.state.micro_batch_size
        if micro <= self.batching.per_rank and self.batching.per_rank % micro == 0:
            self.batching = MicroBatching(per_rank=self.batching.per_rank, micro=micro)
        self.state.micro_batch_size = self.batching.micro
        log.info("resumed from %s at step %d", folder, self.state.step)


def _capture_rng(device: torch.device) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "python": random.getstate(),
    }


def _restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    random.setstate(state["python"])
