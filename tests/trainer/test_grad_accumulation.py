"""The loss is normalised by the step's token count, so the way a step is split into
micro-batches changes nothing: micro 2 x accum 4 gives the gradients of micro 8 x accum 1."""

import pytest
import torch

from worker.trainer.batching import collate, micro_batches, step_items
from worker.trainer.faults import Faults
from worker.trainer.losses import sft_loss_sum

from .conftest import chat_rows


def step_one_gradients(trainer):
    items = step_items(trainer.train_data.items, step=0, effective=8, seed=trainer.config.seed)
    norm = float(sum(s.num_targets for s in items))
    trainer._accumulate(items, norm)
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


@pytest.fixture
def rows():
    return chat_rows(16, seed=3, long_every=3)


@pytest.fixture
def make_config(make_config):
    """Loss on prompts too, so examples carry uneven token counts."""

    def make(**kwargs):
        return make_config(train_on_inputs="true", **kwargs)

    return make


@pytest.mark.parametrize("method", ["lora", "full"])
def test_micro_2_accum_4_equals_micro_8_accum_1(make_config, make_trainer, rows, method):
    small = make_trainer(make_config(train_rows=rows, method=method, micro_batch_size=2))
    large = make_trainer(make_config(train_rows=rows, method=method, micro_batch_size=8))
    assert (small.batching.micro, small.batching.accum) == (2, 4)
    assert (large.batching.micro, large.batching.accum) == (8, 1)
    a, b = step_one_gradients(small), step_one_gradients(large)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-7, msg=name)
    assert any(g.abs().sum() > 0 for g in a.values())


def test_averaging_per_micro_batch_instead_would_differ(make_config, make_trainer, rows):
    """Guards the test above: on this data a per-micro-batch mean gives other gradients."""
    trainer = make_trainer(make_config(train_rows=rows, micro_batch_size=2))
    exact = step_one_gradients(trainer)
    trainer.optimizer.zero_grad(set_to_none=True)
    items = step_items(trainer.train_data.items, step=0, effective=8, seed=trainer.config.seed)
    for chunk in micro_batches(items, 2):
        batch = collate(chunk, pack=True, capacity=256, pad_id=0)
        (sft_loss_sum(trainer.model, batch) / batch.num_targets / 4).backward()
    naive = {n: p.grad for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert any(not torch.allclose(exact[n], naive[n], rtol=1e-3) for n in exact)


def test_out_of_memory_backs_off_and_keeps_the_effective_batch(make_config, make_trainer, rows):
    oom = make_trainer(make_config(train_rows=rows, micro_batch_size=8), faults=Faults(oom_above=3))
    plain = make_trainer(make_config(train_rows=rows, micro_batch_size=2))
    oom._run_step()
    plain._run_step()
    assert (oom.batching.micro, oom.batching.accum) == (2, 4)  # 8 -> 4 -> 2
    assert oom.state.oom_backoffs == 2 and oom.state.micro_batch_size == 2
    assert oom.state.samples_seen == plain.state.samples_seen == 8
    # the step that backed off is the very step a run planned at micro-batch 2 takes
    for (name, p), q in zip(oom.model.named_parameters(), plain.model.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_out_of_memory_at_micro_batch_one_is_an_error(make_config, make_trainer, rows):
    trainer = make_trainer(make_config(train_rows=rows), faults=Faults(oom_above=0))
    with pytest.raises(torch.OutOfMemoryError):
        trainer._run_step()


def test_packed_and_padded_micro_batches_give_the_same_gradients(make_config, make_trainer, rows):
    packed = make_trainer(make_config(train_rows=rows, micro_batch_size=4, packing=True))
    padded = make_trainer(make_config(train_rows=rows, micro_batch_size=4, packing=False))
    assert packed.pack and not padded.pack
    a, b = step_one_gradients(packed), step_one_gradients(padded)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-7, msg=name)
