"""A recovery run in segments: continuing gives the uninterrupted run, bit for bit (CPU).

What holds and is tested: the weights after ``run_to(a); run_to(b)`` (optionally through a
``state_dict`` saved to a file and loaded into a fresh run, as a resumed process does) are
those of one run to ``b`` under the same total schedule, and a staged compression finished
at its budget is :func:`compress`'s model. What does not hold, by design: a model measured
at step ``a`` of a ``b``-step run is not the model of an ``a``-step run (its learning rate
has not decayed); ``test_a_rung_is_the_full_schedule_at_that_step`` pins that down.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
import torch

from paretoedge.compression import CompressionSpec, DistillConfig, StagedCompression, compress
from paretoedge.compression._distill import DistillRun
from paretoedge.errors import ConfigError
from paretoedge.training import batch_stream

SPECS = {
    "prune-int8": {"prune.sparsity": 0.5, "quant.bits": 8},
    "ffn-qat-int4": {"ffn.keep": 0.5, "quant.bits": 4, "quant.qat": True},
    "heads-lowrank": {"heads.keep": 0.5, "lowrank.rank": 8},
}


def _spec(flat: dict, steps: int = 7) -> CompressionSpec:
    return CompressionSpec.from_flat({**flat, "recovery.steps": steps, "recovery.batch_size": 8})


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _round_trip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_batch_stream_start_skips_exactly_that_many_batches(tokenizer, small_task) -> None:
    kw = {"batch_size": 8, "max_length": 16, "seed": 5}
    ref = list(itertools.islice(batch_stream(tokenizer, small_task.train, **kw), 20))
    for start in (0, 3, 8, 13):  # 64 examples: 8 batches per epoch
        got = list(
            itertools.islice(batch_stream(tokenizer, small_task.train, start=start, **kw), 4)
        )
        for a, b in zip(got, ref[start : start + 4], strict=True):
            assert all(torch.equal(a[k], b[k]) for k in a)


def test_distill_run_in_segments_through_a_checkpoint_equals_one_run(
    tiny_bert, tokenizer, small_task
) -> None:
    import copy

    cfg = DistillConfig(steps=9, batch_size=8)
    kw = {
        "total": 9,
        "config": cfg,
        "layer_map": (0, 1),
        "lr": 1e-4,
        "batch_size": 8,
        "max_length": 32,
        "seed": 1,
    }
    teacher = copy.deepcopy(tiny_bert)
    one = copy.deepcopy(tiny_bert).train()  # dropout on: the generator state matters
    DistillRun(one, teacher, tokenizer, small_task.train, **kw).run_to(9)

    first = copy.deepcopy(tiny_bert)
    run = DistillRun(first, teacher, tokenizer, small_task.train, **kw)
    run.run_to(2)
    run.run_to(4)
    state = _round_trip(run.state_dict())
    run.run_to(6)  # the saved state is a copy: training on does not change it
    assert not _same_weights(first, one)
    second = copy.deepcopy(tiny_bert)  # a fresh run, as in another process
    again = DistillRun(second, teacher, tokenizer, small_task.train, **kw)
    again.load_state_dict(state)
    assert again.done == 4
    again.run_to(9)
    assert _same_weights(second, one)
    with pytest.raises(ConfigError, match="step"):
        again.run_to(3)
    with pytest.raises(ConfigError, match="total"):
        DistillRun(
            copy.deepcopy(tiny_bert), teacher, tokenizer, small_task.train, **{**kw, "total": 8}
        ).load_state_dict(state)


@pytest.mark.parametrize("flat", list(SPECS.values()), ids=list(SPECS))
def test_staged_compression_continued_from_a_checkpoint_is_compress(
    tiny_bert, tokenizer, small_task, flat: dict, tmp_path: Path
) -> None:
    spec = _spec(flat)
    kw = {"teacher": tiny_bert, "tokenizer": tokenizer, "task": small_task, "seed": 3}
    reference = compress(tiny_bert, spec, **kw)

    staged = StagedCompression(tiny_bert, spec, **kw)
    staged.recover_to(2)
    rung = staged.result()  # measured at a rung: a finished copy
    assert rung.applied == reference.applied
    staged.recover_to(5)
    torch.save(staged.state_dict(), tmp_path / "ckpt.pt")

    resumed = StagedCompression(tiny_bert, spec, **kw)
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True))
    assert (resumed.done, resumed.total) == (5, 7)
    resumed.recover_to(7)
    final = resumed.result(final=True)
    assert final.applied == reference.applied
    assert _same_weights(final.model, reference.model)

    # and without the checkpoint: the original object goes on undisturbed by its rung copy
    staged.recover_to(7)
    assert _same_weights(staged.result(final=True).model, reference.model)


def test_a_rung_is_the_full_schedule_at_that_step(tiny_bert, tokenizer, small_task) -> None:
    spec = _spec(SPECS["prune-int8"])
    kw = {"teacher": tiny_bert, "tokenizer": tokenizer, "task": small_task, "seed": 3}
    staged = StagedCompression(tiny_bert, spec, **kw)
    staged.recover_to(3)
    at_rung = staged.result().model
    fresh = StagedCompression(tiny_bert, spec, **kw)
    fresh.recover_to(3)
    assert _same_weights(fresh.result(final=True).model, at_rung)
    # a 3-step budget decays its learning rate to 0 by step 3: another model
    short = compress(tiny_bert, _spec(SPECS["prune-int8"], steps=3), **kw).model
    assert not _same_weights(short, at_rung)


def test_staged_compression_needs_recovery_steps(tiny_bert) -> None:
    spec = CompressionSpec.from_flat({"quant.bits": 8})
    with pytest.raises(ConfigError, match="recovery.steps"):
        StagedCompression(tiny_bert, spec)
