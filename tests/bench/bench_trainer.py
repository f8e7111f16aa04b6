"""`make bench-trainer`: our trainer against two baselines on the tiny model.

Same base model, data (chat rows with skewed lengths: most short, a few long), seed, LoRA
shape, optimizer settings and one epoch for all three:

1. a naive HF `Trainer` + PEFT that pads every example to `max_seq_length`;
2. TRL's `SFTTrainer` with its defaults: pads to the longest row of each batch, no
   packing, loss on every token. Two defaults are switched off because they change what
   is measured, not how batches are built: gradient checkpointing and bf16 (the
   others run fp32 without checkpointing);
3. ours: `python -m worker.trainer`'s `run()`, packing each micro-batch.

The machine may be shared, so TRL and ours (a few seconds each) keep the faster of two
tries; the padded baseline (much slower) runs once.

Speed is real (non-pad) tokens per second of the training loop (model loading and data
preparation excluded for everyone). Loss is measured the same way for all three trained
models: mean cross-entropy of the assistant replies of a held-out set of the same kind,
which is what a fine-tune is for (each trainer's own last training loss is printed too;
TRL's includes the prompt tokens it trains on). Packed examples stay isolated: the
trainer's tests compare a packed example's logits with the example run alone.

The last line reads:
`trainer: <x>x non-pad tokens/s vs TRL default (<y>x vs padded), loss <ours>/<TRL>`.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ecolink.catalog.tiny_model import ensure_tiny_model  # noqa: E402

SEED = 1234
TRAIN_ROWS = 512
EVAL_ROWS = 64
LONG_FRACTION = 0.1
MAX_SEQ_LENGTH = 512
BATCH = 8
LEARNING_RATE = 2e-3
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
WORDS = (
    "the model train data loss step batch token learn rate adapter layer weight answer "
    "question user assistant hello thanks please yes okay fine tune GPU CPU cost balance "
    "pause resume cancel job dataset eval json water people number sound first"
).split()


def make_rows(n: int, rng: random.Random) -> list[dict]:
    """Mostly short questions, one in ten long; the reply is learnable from the question."""
    rows = []
    for _ in range(n):
        long = rng.random() < LONG_FRACTION
        words = [
            rng.choice(WORDS) for _ in range(rng.randint(180, 240) if long else rng.randint(3, 12))
        ]
        reply = f"ECOLINK-OK {words[0]} {words[-1]}"
        rows.append(
            {
                "type": "chat",
                "messages": [
                    {"role": "user", "content": " ".join(words)},
                    {"role": "assistant", "content": reply},
                ],
                "source_format": "openai",
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def real_tokens(tokenizer, rows: list[dict]) -> int:
    return sum(
        len(
            tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)[
                "input_ids"
            ]
        )
        for r in rows
    )


def assistant_loss(model, tokenizer, rows: list[dict]) -> float:
    """Mean cross-entropy over the assistant-reply tokens of `rows`, one example at a time."""
    from worker.trainer.batching import collate
    from worker.trainer.data import tokenize
    from worker.trainer.losses import sft_loss_sum
    from worker.trainer.records import parse_record

    data = tokenize(
        [parse_record(r) for r in rows],
        tokenizer,
        objective="sft",
        train_on_inputs="auto",
        max_seq_length=MAX_SEQ_LENGTH,
    )
    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for seq in data.items:
            batch = collate([seq], pack=False, capacity=MAX_SEQ_LENGTH, pad_id=0)
            total += float(sft_loss_sum(model, batch))
            count += batch.num_targets
    return total / count


def isolation_error(model_dir: Path, tokenizer, rows: list[dict]) -> float:
    """Largest logit difference between examples packed the way our trainer packs a
    micro-batch and the same examples run alone (0 up to float rounding)."""
    from transformers import AutoModelForCausalLM

    from worker.trainer.batching import collate
    from worker.trainer.data import tokenize
    from worker.trainer.records import parse_record

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    seqs = tokenize(
        [parse_record(r) for r in rows],
        tokenizer,
        objective="sft",
        train_on_inputs="auto",
        max_seq_length=MAX_SEQ_LENGTH,
    ).items
    packed = collate(seqs, pack=True, capacity=MAX_SEQ_LENGTH, pad_id=tokenizer.pad_token_id)
    worst = 0.0
    with torch.no_grad():
        logits = model(
            input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False
        ).logits
        for i, seq in enumerate(seqs):
            alone = model(input_ids=torch.tensor([seq.input_ids]), use_cache=False).logits[0]
            mine = logits[packed.seq_index == i]
            worst = max(worst, float((mine - alone).abs().max()))
    return worst


def run_ours(model_dir: Path, train_file: Path, folder: Path) -> dict:
    from worker.trainer.__main__ import run
    from worker.trainer.config import RunConfig

    config = RunConfig.from_dict(
        {
            "job_id": "bench",
            "base_model": str(model_dir),
            "train_file": str(train_file),
            "output_dir": str(folder / "out"),
            "events_file": str(folder / "events.jsonl"),
            "epochs": 1,
            "effective_batch_size": BATCH,
            "micro_batch_size": BATCH,
            "max_seq_length": MAX_SEQ_LENGTH,
            "learning_rate": LEARNING_RATE,
            "lr_scheduler": "linear",
            "weight_decay": 0.01,
            "max_grad_norm": 1.0,
            "seed": SEED,
            "save_steps": 0,
            "eval_steps": 0,
            "logging_steps": 8,
            "lora": LORA,
        }
    )
    assert run(config) == 0, "our trainer failed"
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    start = next(
        e["time"] for e in events if e["type"] == "phase" and e["data"]["phase"] == "training"
    )
    end = [e["time"] for e in events if e["type"] == "metrics"][-1]
    manifest = json.loads((folder / "out" / "manifest.json").read_text())
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(base, folder / "out" / "adapter")
    return {
        "seconds": end - start,
        "tokens": manifest["data"]["tokens_trained"],
        "train_loss": manifest["metrics"]["train_loss"],
        "model": model,
    }


def _peft_model(model_dir: Path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    base = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
    return get_peft_model(
        base,
        LoraConfig(
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=LORA["target_modules"],
            task_type="CAUSAL_LM",
        ),
    )


def _training_args(cls, folder: Path, **extra):
    return cls(
        output_dir=str(folder),
        num_train_epochs=1,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.01,
        max_grad_norm=1.0,
        seed=SEED,
        logging_steps=8,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        **extra,
    )


def _last_loss(trainer) -> float:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]


def run_trl_default(model_dir: Path, tokenizer, rows: list[dict], folder: Path) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    dataset = Dataset.from_list([{"messages": r["messages"]} for r in rows])
    args = _training_args(SFTConfig, folder, gradient_checkpointing=False, bf16=False)
    trainer = SFTTrainer(
        model=_peft_model(model_dir), args=args, train_dataset=dataset, processing_class=tokenizer
    )
    return _timed_train(trainer, tokenizer, rows)


def _timed_train(trainer, tokenizer, rows: list[dict]) -> dict:
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # keep the output to the table
    started = time.perf_counter()
    trainer.train()
    return {
        "seconds": time.perf_counter() - started,
        "tokens": real_tokens(tokenizer, rows),
        "train_loss": _last_loss(trainer),
        "model": trainer.model,
    }


def run_padded(model_dir: Path, tokenizer, rows: list[dict], folder: Path) -> dict:
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments, default_data_collator

    def encode(row):
        out = tokenizer.apply_chat_template(
            row["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids, keep = out["input_ids"], out["assistant_masks"]
        pad = MAX_SEQ_LENGTH - len(ids)
        return {
            "input_ids": ids + [tokenizer.pad_token_id] * pad,
            "attention_mask": [1] * len(ids) + [0] * pad,
            "labels": [t if k else -100 for t, k in zip(ids, keep, strict=True)] + [-100] * pad,
        }

    dataset = Dataset.from_list([encode(r) for r in rows])
    trainer = Trainer(
        model=_peft_model(model_dir),
        args=_training_args(TrainingArguments, folder),
        train_dataset=dataset,
        data_collator=default_data_collator,
    )
    return _timed_train(trainer, tokenizer, rows)


def fastest(attempt, tries: int = 2) -> dict:
    runs = [attempt(i) for i in range(tries)]
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    import logging

    import datasets
    import transformers
    from transformers import AutoTokenizer

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    datasets.disable_progress_bars()
    transformers.logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        folder = Path(tmp)
        model_dir = ensure_tiny_model(folder / "tiny-qwen2")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        rng = random.Random(SEED)
        train_rows, eval_rows = make_rows(TRAIN_ROWS, rng), make_rows(EVAL_ROWS, rng)
        train_file = write_jsonl(folder / "train.jsonl", train_rows)
        lengths = sorted(
            len(tokenizer.apply_chat_template(r["messages"], return_dict=True)["input_ids"])
            for r in train_rows
        )
        print(
            f"data: {len(train_rows)} chat rows, tokens median {lengths[len(lengths) // 2]}, "
            f"p95 {lengths[int(len(lengths) * 0.95)]}, max {lengths[-1]}; "
            f"batch {BATCH}, max_seq_length {MAX_SEQ_LENGTH}, 1 epoch, torch threads "
            f"{torch.get_num_threads()}"
        )

        print(
            "packing isolation: max |packed - alone| logit difference "
            f"{isolation_error(model_dir, tokenizer, train_rows[:32]):.1e}"
        )
        # The machine may be shared: the two quick runs take the faster of two tries each;
        # the padded baseline, which takes far longer, runs once.
        results = {
            "padded (HF Trainer)": run_padded(model_dir, tokenizer, train_rows, folder / "padded"),
            "TRL SFTTrainer default": fastest(
                lambda i: run_trl_default(model_dir, tokenizer, train_rows, folder / f"trl{i}")
            ),
            "ours (packed)": fastest(
                lambda i: run_ours(model_dir, train_file, folder / f"ours{i}")
            ),
        }
        print(
            f"{'run':24} {'seconds':>8} {'non-pad tok/s':>14} {'train loss':>11} {'eval loss':>10}"
        )
        for name, r in results.items():
            r["speed"] = r["tokens"] / r["seconds"]
            r["eval_loss"] = assistant_loss(r["model"], tokenizer, eval_rows)
            print(
                f"{name:24} {r['seconds']:8.2f} {r['speed']:14.0f} {r['train_loss']:11.4f} "
                f"{r['eval_loss']:10.4f}"
            )
        ours, trl, padded = (
            results["ours (packed)"],
            results["TRL SFTTrainer default"],
            results["padded (HF Trainer)"],
        )
        print(
            f"trainer: {ours['speed'] / trl['speed']:.2f}x non-pad tokens/s vs TRL default "
            f"({ours['speed'] / padded['speed']:.2f}x vs padded), "
            f"loss {ours['eval_loss']:.4f}/{trl['eval_loss']:.4f}"
        )


if __name__ == "__main__":
    main()
