"""Every method x objective trains the tiny model for real: the loss falls, trained
weights move, frozen weights do not, and the artifacts land where the platform looks."""

import json

import pytest
import torch
from safetensors.torch import load_file

from worker.trainer import exit_codes, modeling
from worker.trainer.__main__ import run

from .conftest import of_type, read_events

SETTINGS = {
    # lr and steps chosen so that each combination learns the ECOLINK-OK pattern quickly
    "lora": {"learning_rate": 1e-2},
    "qlora": {"learning_rate": 1e-2},
    "full": {"learning_rate": 2e-3},
    "prompt_tuning": {
        "learning_rate": 1e-2,
        "prompt_tuning": {"num_virtual_tokens": 8, "init_text": "ECOLINK-OK answer"},
    },
}
# How far the mean loss of the last three steps must fall below that of the first three.
# A soft prompt steers a random tiny model only a little, so it gets a smaller bar; the
# step-to-step noise is below 0.01.
MIN_FALL = {"sft": 0.3, "dpo": 0.1, ("prompt_tuning", "sft"): 0.1, ("prompt_tuning", "dpo"): 0.01}


@pytest.fixture
def spy_model(monkeypatch):
    """Keeps the model that `run` trains, and a copy of its weights before training."""
    seen = {}
    real = modeling.load_model

    def load_model(config, device):
        model = real(config, device)
        seen["model"] = model
        seen["before"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return model

    monkeypatch.setattr(modeling, "load_model", load_model)
    return seen


@pytest.mark.parametrize("objective", ["sft", "dpo"])
@pytest.mark.parametrize("method", ["lora", "qlora", "full", "prompt_tuning"])
def test_method_and_objective_train_the_tiny_model(
    make_config, spy_model, method, objective, tmp_path
):
    config = make_config(method=method, objective=objective, epochs=3, **SETTINGS[method])
    assert run(config) == exit_codes.OK

    events = read_events(config.events_file)
    losses = [e["data"]["loss"] for e in of_type(events, "metrics")]
    assert len(losses) == 12  # 32 examples / 8 per step x 3 epochs
    fall = sum(losses[:3]) / 3 - sum(losses[-3:]) / 3
    assert fall > MIN_FALL.get((method, objective), MIN_FALL[objective]), losses

    model, before = spy_model["model"], spy_model["before"]
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    after = dict(model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in trained)
    frozen = set(after) - trained
    assert all(torch.equal(before[n], after[n]) for n in frozen)  # base weights untouched
    if method == "full":
        assert not frozen
    else:
        assert any("embed_tokens" in n for n in frozen)

    adapter = tmp_path / "out" / "adapter"
    if method == "full":
        assert (adapter / "model.safetensors").exists() and (adapter / "config.json").exists()
    else:
        assert (adapter / "adapter_config.json").exists()
        assert load_file(adapter / "adapter_model.safetensors")
    if method == "qlora":
        import bitsandbytes as bnb

        q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
        assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit)
        assert q_proj.base_layer.weight.quant_type == "nf4"
        assert q_proj.base_layer.weight.quant_state.nested  # double quantization

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["hyperparameters"]["method"] == method
    assert manifest["total_steps"] == 12
    finished = of_type(events, "finished")[0]["data"]
    assert finished["adapter_path"] == str(adapter)
    assert finished["metrics"]["train_loss"] == pytest.approx(losses[-1])
