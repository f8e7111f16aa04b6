"""Exact effective batches, micro-batch backoff, packing layout."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from worker.trainer.batching import collate, pack_rows, step_items
from worker.trainer.data import IGNORE, Sequence
from worker.trainer.microbatch import MicroBatching


@given(per_rank=st.integers(1, 1024), hint=st.integers(1, 32))
def test_micro_batch_times_accumulation_is_exactly_the_share(per_rank, hint):
    plan = MicroBatching.plan(per_rank, hint)
    assert plan.micro <= hint
    assert plan.micro * plan.accum == per_rank
    while (smaller := plan.backoff()) is not None:
        assert smaller.micro < plan.micro
        assert smaller.micro * smaller.accum == per_rank
        plan = smaller
    assert plan.micro == 1


def test_a_hint_that_does_not_divide_uses_the_largest_divisor_below_it():
    assert MicroBatching.plan(24, 5).micro == 4
    assert MicroBatching.plan(7, 4).micro == 1
    assert MicroBatching.plan(16, 32).micro == 16


@given(lengths=st.lists(st.integers(1, 128), min_size=1, max_size=40))
def test_packing_places_every_example_once_within_capacity(lengths):
    rows = pack_rows(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)


def seq(n, start=0):
    ids = list(range(start, start + n))
    return Sequence(ids, [*ids[1:], IGNORE])


def test_packed_rows_restart_positions_per_example_and_pad_nothing_inside():
    batch = collate([seq(5), seq(3, 10), seq(6, 20)], pack=True, capacity=8, pad_id=0)
    assert batch.attention_mask is None
    assert batch.num_tokens == 14
    # rows: [6-token example + pad 2], [5 + 3]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 0, 1], [0, 1, 2, 3, 4, 0, 1, 2]]
    assert batch.seq_index.tolist() == [[2] * 6 + [-1, -1], [0] * 5 + [1] * 3]
    assert (batch.targets[0, 6:] == IGNORE).all()
    # the last token of each example has no target: no example predicts its neighbour
    assert batch.targets[1, 4] == IGNORE and batch.targets[1, 7] == IGNORE


def test_unpacked_rows_are_right_padded_with_a_mask():
    batch = collate([seq(2), seq(4)], pack=False, capacity=8, pad_id=0)
    assert batch.position_ids is None
    assert batch.attention_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_each_step_of_an_epoch_takes_new_examples_in_a_seeded_order():
    items = list(range(20))
    steps = [step_items(items, step=s, effective=6, seed=1) for s in range(3)]
    seen = [i for s in steps for i in s]
    assert len(seen) == len(set(seen)) == 18  # the 2 left over do not make a partial step
    assert steps == [step_items(items, step=s, effective=6, seed=1) for s in range(3)]
    assert step_items(items, step=3, effective=6, seed=1) != steps[0]  # epoch 2 reshuffles
    assert torch.is_tensor(collate([seq(2)], pack=True, capacity=4, pad_id=0).input_ids)
