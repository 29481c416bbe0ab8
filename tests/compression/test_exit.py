"""Early exit on tiny-bert: heads, the exit policy, training, per-prefix ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paretoedge.compression import (
    CompressionSpec,
    ExitConfig,
    attach_exits,
    compress,
    exit_inference,
    export_exits,
    model_stats,
    train_exits,
)
from paretoedge.compression._exit import all_logits, decide
from paretoedge.errors import ConfigError


def test_decide_leaves_at_the_first_confident_exit():
    first = torch.tensor([[4.0, 0.0], [0.0, 0.1], [0.0, 0.2]])  # 0.98, 0.52, 0.55
    second = torch.tensor([[0.0, 1.0], [3.0, 0.0], [0.0, 0.1]])  # 0.73, 0.95, 0.52
    final = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    pred, where = decide([first, second, final], 0.9)
    assert where.tolist() == [0, 1, 2]
    assert pred.tolist() == [0, 0, 0]
    pred, where = decide([first, second, final], 0.5)
    assert where.tolist() == [0, 0, 0] and pred.tolist() == [0, 1, 1]


def test_attach_adds_heads_and_bytes(tiny_bert):
    before = model_stats(tiny_bert).parameters
    attach_exits(tiny_bert, ExitConfig(layers="1", steps=0))
    heads = tiny_bert.paretoedge_exits
    assert list(heads) == ["1"]
    # initialised from the pooler and classifier
    assert torch.equal(heads["1"].dense.weight, tiny_bert.bert.pooler.dense.weight)
    assert model_stats(tiny_bert).parameters == before + 64 * 64 + 64 + 64 * 2 + 2


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"layers": ""}, "exit.layers", "non-empty"),
        ({"layers": "0"}, "exit.layers", "integers >= 1"),
        ({"layers": "x"}, "exit.layers", "integers >= 1"),
        ({"threshold": 0}, "exit.threshold", "(0, 1]"),
        ({"threshold": 1.5}, "exit.threshold", "(0, 1]"),
        ({"steps": -1}, "exit.steps", "integer >= 0"),
        ({"lr": 0}, "exit.lr", "(0, 1]"),
        ({"batch_size": 0}, "exit.batch_size", "integer >= 1"),
    ],
    ids=["empty", "zero", "text", "th0", "th-big", "steps", "lr", "batch"],
)
def test_bad_values_name_field_and_allowed(kwargs, field, allowed):
    with pytest.raises(ConfigError) as info:
        ExitConfig(**kwargs)
    msg = str(info.value)
    assert field in msg and allowed in msg and "\n" not in msg


def test_exit_at_or_past_the_depth_is_refused(tiny_bert):
    with pytest.raises(ConfigError, match=r"exit\.layers.*1\.\.1"):
        attach_exits(tiny_bert, ExitConfig(layers="1,2"))


def test_training_moves_only_the_heads(tiny_bert, batches):
    config = ExitConfig(layers="1", steps=30, lr=1e-2)
    attach_exits(tiny_bert, config)
    frozen = {k: v.clone() for k, v in tiny_bert.state_dict().items() if "exits" not in k}
    head0 = tiny_bert.paretoedge_exits["1"].classifier.weight.clone()
    losses = train_exits(tiny_bert, batches, config, seed=0)
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    after = tiny_bert.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())
    assert not torch.equal(tiny_bert.paretoedge_exits["1"].classifier.weight, head0)


def test_exit_policy_accuracy_and_distribution(tiny_bert, batches):
    attach_exits(tiny_bert, ExitConfig(layers="1", steps=0))
    strict = exit_inference(tiny_bert, batches, threshold=1.0)
    assert strict.layers == (1, 2) and sum(strict.fractions) == pytest.approx(1.0)
    assert strict.fractions[-1] > 0.99  # nothing is certain: almost all reach the end
    with torch.no_grad():
        full = sum(
            int(
                (
                    tiny_bert(
                        **{k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
                    ).logits.argmax(-1)
                    == b["labels"]
                ).sum()
            )
            for b in batches
        )
    assert strict.accuracy == pytest.approx(full / sum(len(b["labels"]) for b in batches))
    eager = exit_inference(tiny_bert, batches, threshold=0.01)
    assert eager.fractions == (1.0, 0.0)


def test_compress_needs_data_to_train_and_is_deterministic(tiny_bert, tokenizer, small_task):
    spec = CompressionSpec.from_flat({"exit.layers": "1", "exit.steps": 5, "prune.sparsity": 0.3})
    with pytest.raises(ConfigError, match="exit.steps"):
        compress(tiny_bert, spec)
    a = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=0)
    b = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=0)
    assert a.applied == ("prune", "exit")
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert any("paretoedge_exits" in k for k in sa)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_one_onnx_per_prefix_matches_pytorch(tiny_bert, tmp_path):
    import onnx
    import onnxruntime as ort

    from paretoedge.compression._export import INPUT_NAMES, example_inputs

    attach_exits(tiny_bert, ExitConfig(layers="1", threshold=0.7, steps=0))
    paths = export_exits(tiny_bert, tmp_path / "m.onnx", seq_len=16)
    assert sorted(paths) == [1, 2]
    x = example_inputs(tiny_bert, batch=1, seq_len=16)
    with torch.no_grad():
        exit1, final = all_logits(tiny_bert, x)
    feed = {k: x[k].numpy() for k in INPUT_NAMES}
    s1 = ort.InferenceSession(str(paths[1]))
    assert [o.name for o in s1.get_outputs()] == ["logits"]
    assert np.allclose(s1.run(None, feed)[0], exit1.numpy(), atol=1e-5)
    s2 = ort.InferenceSession(str(paths[2]))
    out = s2.run(None, feed)
    assert [o.name for o in s2.get_outputs()] == ["logits", "exit_logits_1"]
    assert np.allclose(out[0], final.numpy(), atol=1e-5)
    assert np.allclose(out[1], exit1.numpy(), atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(str(paths[1])).metadata_props}
    assert meta["paretoedge.exit.layers"] == "1" and meta["paretoedge.exit.threshold"] == "0.7"
    # the prefix holds one encoder layer, the full graph two
    n1 = sum(1 for n in onnx.load(str(paths[1])).graph.node if n.op_type == "Softmax")
    n2 = sum(1 for n in onnx.load(str(paths[2])).graph.node if n.op_type == "Softmax")
    assert (n1, n2) == (1, 2)


def test_save_and_load_round_trip_with_all_three(tiny_bert, tokenizer, small_task, tmp_path):
    from paretoedge.compression import load_compressed, save_compressed

    spec = CompressionSpec.from_flat(
        {
            "heads.keep": 0.5,
            "tensor.method": "tt",
            "tensor.rank": 4,
            "tensor.targets": "attention",
            "attention.kind": "local",
            "attention.window": 4,
            "quant.bits": 8,
            "quant.act_bits": "none",
            "exit.layers": "1",
            "exit.steps": 3,
        }
    )
    model = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=0).model
    save_compressed(model, tmp_path / "hf", spec=spec)
    loaded = load_compressed(tmp_path / "hf")
    x = {k: v for k, v in _feed().items()}
    with torch.no_grad():
        for a, b in zip(all_logits(model, x), all_logits(loaded, x), strict=True):
            assert torch.allclose(a, b, atol=1e-6)
    assert loaded.paretoedge_exit_threshold == spec.exit.threshold


def _feed() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(1000, 5000, (2, 12), generator=gen)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
    }


def test_exit_heads_on_a_model_with_int8_activations(tiny_bert, tokenizer, small_task):
    spec = CompressionSpec.from_flat({"quant.bits": 8, "exit.layers": "1", "exit.steps": 2})
    result = compress(tiny_bert, spec, tokenizer=tokenizer, task=small_task, seed=0)
    assert result.applied == ("quant(ptq)", "calibrate", "exit")
    assert hasattr(result.model.classifier, "act_quant")
