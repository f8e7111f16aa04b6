"""Pod entry point: `python -m worker.trainer --config run.json`.

Load the config → build the data → build the model → train → save the adapter and the
manifest. Exit codes are in `exit_codes.py`; progress goes to the events URL and/or file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from worker.trainer import exit_codes
from worker.trainer.config import ConfigError, RunConfig
from worker.trainer.events import EventReporter, LogTail
from worker.trainer.records import DataError, read_records
from worker.trainer.signals import StopRequest

log = logging.getLogger("worker.trainer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.trainer", description=__doc__)
    parser.add_argument("--config", required=True, help="path of the run config (JSON)")
    args = parser.parse_args(argv)
    tail = _setup_logging()
    try:
        config = RunConfig.from_json_file(args.config)
    except ConfigError as exc:
        log.error("invalid config: %s", exc)
        _report_early_error(args.config, exc, tail)
        return exit_codes.CONFIG_ERROR

    from worker.trainer import distributed

    if config.world_size > 1 and not distributed.under_torchrun():
        try:
            return distributed.relaunch(args.config, config.world_size)
        except ConfigError as exc:
            log.error("invalid config: %s", exc)
            _report_early_error(args.config, exc, tail)
            return exit_codes.CONFIG_ERROR
    return run(config, stop=StopRequest().install(), log_tail=tail)


def run(
    config: RunConfig, *, stop: StopRequest | None = None, log_tail: LogTail | None = None
) -> int:
    """Train one run and return its exit code; every failure becomes an `error` event."""
    import torch

    from worker.trainer import distributed, modeling
    from worker.trainer.data import tokenize
    from worker.trainer.faults import Faults
    from worker.trainer.loop import Trainer
    from worker.trainer.tracking import Tracker, build_tracker

    dist = distributed.setup()
    reporter = EventReporter(
        job_id=config.job_id, url=config.events_url, path=config.events_file, enabled=dist.is_main
    )
    stop = stop or StopRequest()
    tracker: Tracker = Tracker()
    code, status = exit_codes.INTERNAL_ERROR, "failed"
    try:
        reporter.emit(
            "started",
            {
                "method": config.method,
                "objective": config.objective,
                "base_model": config.base_model,
                "world_size": dist.world_size,
                "resume_from": config.resume_from,
                "pid": os.getpid(),
            },
        )
        tracker = build_tracker(config, enabled=dist.is_main)

        reporter.phase("preparing_data")
        tokenizer = modeling.load_tokenizer(config)
        max_length = modeling.realised_max_length(config)
        options = {
            "objective": config.objective,
            "train_on_inputs": config.train_on_inputs,
            "max_seq_length": max_length,
        }
        train = tokenize(read_records(config.train_file), tokenizer, **options)
        validation = None
        if config.validation_file:
            validation = tokenize(read_records(config.validation_file), tokenizer, **options)

        reporter.phase("loading_model")
        from transformers import set_seed

        set_seed(config.seed)
        model = modeling.load_model(config, dist.device)
        trainer = Trainer(
            config,
            model,
            train=train,
            validation=validation,
            max_length=max_length,
            pad_id=tokenizer.pad_token_id,
            dist=dist,
            reporter=reporter,
            tracker=tracker,
            stop=stop,
            faults=Faults.from_env(),
        )
        resumed_from = _resume_point(config)
        if resumed_from:
            trainer.restore(resumed_from)
        tracker.log_params({**config.to_dict(), "realised": trainer.realised()})

        outcome = trainer.train()
        if outcome.stopped:
            code, status = exit_codes.RESUMABLE, "stopped"
            return code

        reporter.phase("saving")
        if dist.is_main:
            finished = _save_results(config, trainer, tokenizer, reporter.run_id, resumed_from)
            reporter.emit("finished", finished)
        dist.barrier()
        code, status = exit_codes.OK, "finished"
        return code
    except ConfigError as exc:
        code = exit_codes.CONFIG_ERROR
        _report_error(reporter, "config", exc, log_tail)
    except DataError as exc:
        code = exit_codes.DATA_ERROR
        _report_error(reporter, "data", exc, log_tail)
    except torch.OutOfMemoryError as exc:
        code = exit_codes.INTERNAL_ERROR
        _report_error(reporter, "oom", exc, log_tail)
    except Exception as exc:
        code = exit_codes.INTERNAL_ERROR
        _report_error(reporter, "internal", exc, log_tail)
    finally:
        tracker.finish(status)
        reporter.close()
        stop.uninstall()
        if dist.is_main:
            distributed.write_status(code)
        dist.close()
    return code


def _resume_point(config: RunConfig) -> Path | None:
    """The checkpoint to continue from: `resume_from`, or else the latest complete one
    that an earlier attempt of this job left in the checkpoints folder."""
    from worker.trainer import checkpoint

    if config.resume_from:
        try:
            found = checkpoint.resolve(Path(config.resume_from))
        except FileNotFoundError as exc:
            raise ConfigError("resume_from", str(exc)) from exc
        if found is None:
            log.warning("no complete checkpoint in %s: starting from scratch", config.resume_from)
        return found
    found = checkpoint.latest(config.checkpoints_path)
    if found is None:
        return None
    owner = json.loads((found / "run_config.json").read_text()).get("job_id")
    if owner != config.job_id:
        raise ConfigError(
            "checkpoint_dir", f"{config.checkpoints_path} holds checkpoints of job {owner!r}"
        )
    log.info("resuming from %s, left by an earlier attempt of this job", found)
    return found


def _save_results(
    config: RunConfig, trainer: Any, tokenizer: Any, run_id: str, resumed_from: Path | None
) -> dict[str, Any]:
    """Write the final adapter (or full weights) and the manifest; return the data of the
    `finished` event."""
    from worker.trainer import manifest

    state, train, validation = trainer.state, trainer.train_data, trainer.validation
    metrics = {
        "train_loss": state.train_loss,
        "eval_loss": state.last_eval.get("eval_loss"),
        "perplexity": state.last_eval.get("perplexity"),
    }
    adapter = _save_final(trainer.model, tokenizer, Path(config.output_dir) / "adapter")
    record = manifest.build(
        config,
        run_id=run_id,
        base_model_revision=config.base_model_revision
        or getattr(trainer.model.config, "_commit_hash", None),
        realised={**trainer.realised(), "oom_backoffs": state.oom_backoffs},
        data={
            "train": train.stats(),
            "validation": validation.stats() if validation else None,
            "truncated_examples": train.truncated + (validation.truncated if validation else 0),
            "tokens_trained": state.tokens_seen,
            "examples_trained": state.samples_seen,
        },
        metrics=metrics,
        total_steps=state.step,
        early_stopped=state.early_stopped,
        resumed_from=str(resumed_from) if resumed_from else None,
        artifacts={"adapter_path": str(adapter), "checkpoints_path": str(config.checkpoints_path)},
    )
    manifest_path = manifest.write(Path(config.output_dir) / "manifest.json", record)
    return {
        "adapter_path": str(adapter),
        "manifest_path": str(manifest_path),
        "metrics": metrics,
        "total_steps": state.step,
    }


def _save_final(model: Any, tokenizer: Any, target: Path) -> Path:
    """Adapter (or full weights) plus tokenizer, swapped in whole."""
    from worker.trainer.modeling import save_weights

    temp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(temp, ignore_errors=True)
    save_weights(model, temp)
    tokenizer.save_pretrained(temp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(temp, target)
    return target


def _report_error(
    reporter: EventReporter, error_class: str, exc: BaseException, tail: LogTail | None
) -> None:
    log.exception("training failed (%s): %s", error_class, exc)
    reporter.emit(
        "error",
        {
            "error_class": error_class,
            "message": f"{type(exc).__name__}: {exc}",
            "log_tail": tail.text() if tail else [],
        },
    )


def _report_early_error(config_path: str, exc: ConfigError, tail: LogTail) -> None:
    """A config that fails validation may still say where to report: try, briefly."""
    try:
        raw = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(raw, dict):
        return
    url, path = raw.get("events_url"), raw.get("events_file")
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        url = None
    if not isinstance(path, str):
        path = None
    if url or path:
        reporter = EventReporter(job_id=str(raw.get("job_id", "")), url=url, path=path)
        _report_error(reporter, "config", exc, tail)
        reporter.close(timeout=5.0)


def _setup_logging() -> LogTail:
    rank = os.environ.get("RANK")
    prefix = f"[rank {rank}] " if rank else ""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
    )
    tail = LogTail()
    logging.getLogger().addHandler(tail)
    return tail


if __name__ == "__main__":
    sys.exit(main())
