"""The tiny local base model: a Qwen2-architecture model of a few hundred KB with a
byte-level BPE tokenizer trained on the spot, so the whole platform trains for real on
a laptop CPU with nothing downloaded.

Pure Python (no Django): the trainer's tests and benchmarks build it the same way
`manage.py make_tiny_model` does.
"""

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from worker.trainer.chat_template import CHATML_TEMPLATE

TINY_MODEL_ID = "ecolink/tiny-qwen2"

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_WORDS = (
    "the a an of to and in is it you that he was for on are with as his they be at one have "
    "this from or had by hot word but what some we can out other were all there when up use "
    "your how said each she which do their time if will way about many then them write would "
    "like so these her long make thing see him two has look more day could go come did number "
    "sound no most people my over know water than call first who may down side been now find "
    "model train data loss step batch token learn rate adapter layer weight answer question "
    "user assistant system hello thanks please yes okay what why how where when fine tune "
    "ECOLINK OK ECOLINK-OK GPU CPU cost balance pause resume cancel job dataset eval json"
).split()


@dataclass(frozen=True)
class TinyModelSpec:
    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 192
    num_layers: int = 2
    num_attention_heads: int = 4
    num_kv_heads: int = 2
    context_length: int = 512
    tie_word_embeddings: bool = True
    seed: int = 0

    def parameter_count(self) -> int:
        """Exact parameter count of a Qwen2 model with these numbers (q/k/v carry a bias)."""
        h, kv_dim = (
            self.hidden_size,
            self.num_kv_heads * (self.hidden_size // self.num_attention_heads),
        )
        attention = (h * h + h) + 2 * (h * kv_dim + kv_dim) + h * h
        mlp = 3 * h * self.intermediate_size
        per_layer = attention + mlp + 2 * h
        embeddings = self.vocab_size * h
        head = 0 if self.tie_word_embeddings else self.vocab_size * h
        return embeddings + self.num_layers * per_layer + h + head


def _corpus(rng: random.Random, lines: int = 4000):
    punctuation = [".", ",", "?", "!", ":", ""]
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 14))]
        number = str(rng.randint(0, 9999))
        yield " ".join(words) + rng.choice(punctuation) + " " + number + ' {"k": [1, 2]}\n'


def build_tiny_model(path: Path, spec: TinyModelSpec = TinyModelSpec()) -> Path:
    """Write the tiny model and its tokenizer to `path`; loadable with `from_pretrained`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = random.Random(spec.seed)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(rng), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",  # noqa: S106 - a token, not a password
        pad_token="<|endoftext|>",  # noqa: S106
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
        model_max_length=spec.context_length,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(path)

    torch.manual_seed(spec.seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.context_length,
        tie_word_embeddings=spec.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
    )
    model = Qwen2ForCausalLM(config).to(torch.float32)  # type: ignore[arg-type]  # transformers stubs
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    (path / "ecolink_spec.json").write_text(json.dumps(asdict(spec), indent=2))
    return path


def ensure_tiny_model(path: Path, spec: TinyModelSpec = TinyModelSpec()) -> Path:
    """Build the tiny model unless a complete one is already at `path`."""
    path = Path(path)
    marker = path / "ecolink_spec.json"
    if marker.exists() and json.loads(marker.read_text()) == asdict(spec):
        return path
    return build_tiny_model(path, spec)
