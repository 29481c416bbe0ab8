"""Each transform changes what it should on tiny-bert (2 layers, hidden 64, 4 heads, FFN 128)."""

from __future__ import annotations

import pytest
import torch

from paretoedge.compression import (
    FFNConfig,
    HeadsConfig,
    LowRankConfig,
    LowRankEmbedding,
    LowRankLinear,
    PruneConfig,
    QuantConfig,
    bake,
    low_rank,
    magnitude_prune,
    model_stats,
    prune_ffn,
    prune_heads,
    quantize_weights,
)
from paretoedge.errors import ConfigError

Q = "bert.encoder.layer.{}.attention.self.query"
OUT = "bert.encoder.layer.{}.attention.output.dense"
FIN = "bert.encoder.layer.{}.intermediate.dense"
FOUT = "bert.encoder.layer.{}.output.dense"


def _inputs(seq: int = 12) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 5000, (2, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, seq // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(**_inputs()).logits


def _weights(model, kind=torch.nn.Linear):
    return {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, kind)}


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("sparsity", [0.3, 0.9])
def test_magnitude_prune_reaches_sparsity_and_keeps_large_weights(tiny_bert, scope, sparsity):
    before = _weights(tiny_bert)
    reached = magnitude_prune(tiny_bert, PruneConfig(sparsity=sparsity, scope=scope))
    stats = model_stats(tiny_bert)
    assert reached == pytest.approx(sparsity, abs=1e-3)
    assert stats.sparsity == pytest.approx(sparsity, abs=1e-3)
    assert stats.parameters == model_stats(bake(tiny_bert)).parameters
    w = tiny_bert.get_submodule(FIN.format(0)).weight
    old = before[FIN.format(0)]
    kept = w != 0
    if scope == "layer":
        assert (~kept).float().mean().item() == pytest.approx(sparsity, abs=1e-3)
    # every kept weight is at least as large as every pruned one of the same layer
    assert old[kept].abs().min() >= old[~kept].abs().max()
    # head and embeddings are not pruned
    assert (tiny_bert.classifier.weight != 0).all()


def test_masks_stay_applied_through_finetuning(tiny_bert):
    magnitude_prune(tiny_bert, PruneConfig(sparsity=0.5))
    zeros = {n: (w == 0) for n, w in _weights(tiny_bert).items() if "encoder" in n}
    opt = torch.optim.SGD(tiny_bert.parameters(), lr=0.5)
    tiny_bert.train()
    for _ in range(3):
        out = tiny_bert(**_inputs(), labels=torch.tensor([0, 1]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    bake(tiny_bert)
    for name, was_zero in zeros.items():
        w = tiny_bert.get_submodule(name).weight
        assert (w[was_zero] == 0).all(), name
        assert not hasattr(tiny_bert.get_submodule(name), "parametrizations")


@pytest.mark.parametrize("criterion", ["magnitude", "gradient"])
def test_prune_heads_shrinks_matrices_and_runs(tiny_bert, batches, criterion):
    params = model_stats(tiny_bert).parameters
    kept = prune_heads(tiny_bert, HeadsConfig(keep=0.5, criterion=criterion), batches)
    assert all(len(k) == 2 for k in kept.values())
    for i in range(2):
        assert tiny_bert.get_submodule(Q.format(i)).weight.shape == (32, 64)
        assert tiny_bert.get_submodule(OUT.format(i)).weight.shape == (64, 32)
        assert tiny_bert.bert.encoder.layer[i].attention.self.num_attention_heads == 2
    # per layer: Q, K, V lose 2 heads x 16 rows x (64 + 1); O loses 32 columns x 64
    assert params - model_stats(tiny_bert).parameters == 2 * (3 * 32 * 65 + 32 * 64)
    with torch.no_grad():
        out = tiny_bert(**_inputs(), output_attentions=True)
    assert out.attentions[0].shape[1] == 2


def test_prune_heads_keeps_the_most_important_head(tiny_bert):
    with torch.no_grad():
        for name in ("query", "key", "value"):
            getattr(tiny_bert.bert.encoder.layer[0].attention.self, name).weight[48:64] *= 10
    kept = prune_heads(tiny_bert, HeadsConfig(keep=0.25))
    assert kept[0] == [3]


def test_gradient_criterion_needs_data(tiny_bert):
    with pytest.raises(ConfigError, match="heads.criterion"):
        prune_heads(tiny_bert, HeadsConfig(keep=0.5, criterion="gradient"), None)


def test_pruned_heads_give_the_same_output_as_masked_heads(tiny_bert):
    """Removing a head's rows/columns equals zeroing its context (no other change)."""
    import copy

    ref = copy.deepcopy(tiny_bert)
    kept = prune_heads(tiny_bert, HeadsConfig(keep=0.75))
    for i, heads in kept.items():
        dropped = [h for h in range(4) if h not in heads]
        out = ref.get_submodule(OUT.format(i))
        with torch.no_grad():
            for h in dropped:
                out.weight[:, h * 16 : (h + 1) * 16] = 0
    torch.testing.assert_close(_logits(tiny_bert), _logits(ref), atol=1e-5, rtol=1e-4)


def test_prune_ffn_shrinks_intermediate(tiny_bert):
    sizes = prune_ffn(tiny_bert, FFNConfig(keep=0.25))
    assert sizes == {0: 32, 1: 32}
    for i in range(2):
        assert tiny_bert.get_submodule(FIN.format(i)).weight.shape == (32, 64)
        assert tiny_bert.get_submodule(FOUT.format(i)).weight.shape == (64, 32)
    assert _logits(tiny_bert).shape == (2, 2)


def test_low_rank_replaces_only_where_it_saves(tiny_bert):
    ref = _logits(tiny_bert)
    params = model_stats(tiny_bert).parameters
    replaced = low_rank(tiny_bert, LowRankConfig(rank=8, targets=("attention", "ffn")))
    assert len(replaced) == 12 and set(replaced.values()) == {8}
    q = tiny_bert.get_submodule(Q.format(0))
    assert isinstance(q, LowRankLinear) and q.down.weight.shape == (8, 64)
    assert q.up.weight.shape == (64, 8)
    assert model_stats(tiny_bert).parameters < params
    assert _logits(tiny_bert).shape == ref.shape
    # rank 40 on a 64x64 projection would not save parameters: left alone
    other = low_rank(tiny_bert, LowRankConfig(rank=40, targets=("attention",)))
    assert other == {}


def test_low_rank_full_energy_is_exact(tiny_bert):
    ref = _logits(tiny_bert)
    w = tiny_bert.get_submodule(FIN.format(0)).weight.detach()
    with torch.no_grad():  # make one matrix exactly rank 4
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        tiny_bert.get_submodule(FIN.format(0)).weight.copy_((u[:, :4] * s[:4]) @ vh[:4])
    ref = _logits(tiny_bert)
    replaced = low_rank(tiny_bert, LowRankConfig(energy=0.999999, targets=("ffn",)))
    assert replaced[FIN.format(0)] == 4
    assert FOUT.format(0) not in replaced  # full rank: factoring would not save
    torch.testing.assert_close(_logits(tiny_bert), ref, atol=1e-4, rtol=1e-3)


def test_low_rank_embeddings(tiny_bert):
    before = model_stats(tiny_bert).parameters
    replaced = low_rank(tiny_bert, LowRankConfig(rank=16, targets=("embeddings",)))
    emb = tiny_bert.bert.embeddings.word_embeddings
    assert isinstance(emb, LowRankEmbedding) and emb.embed.weight.shape == (30522, 16)
    assert replaced == {"bert.embeddings.word_embeddings": 16}
    assert before - model_stats(tiny_bert).parameters == 30522 * 64 - (30522 * 16 + 16 * 64)
    assert _logits(tiny_bert).shape == (2, 2)


@pytest.mark.parametrize("bits", [8, 4])
def test_uniform_quant_per_channel_levels(tiny_bert, bits):
    quantize_weights(tiny_bert, QuantConfig(bits=bits, act_bits=None))
    bake(tiny_bert)
    w = tiny_bert.get_submodule(FIN.format(1)).weight.detach()
    scale = w.abs().amax(dim=1, keepdim=True) / (2 ** (bits - 1) - 1)
    codes = w / scale
    torch.testing.assert_close(codes, codes.round(), atol=1e-3, rtol=0)
    assert codes.abs().max() <= 2 ** (bits - 1) - 1 + 1e-3
    for row in w[:4]:
        assert row.unique().numel() <= 2**bits - 1
    stats = model_stats(tiny_bert)
    assert set(stats.layer_bits.values()) == {bits}


def test_quant_layer_bits_overrides_and_fp16(tiny_bert):
    config = QuantConfig(bits=8, layer_bits=(("ffn", 4), ("layer.1", 16), ("classifier", 32)))
    chosen = quantize_weights(tiny_bert, config)
    assert chosen[FIN.format(0)] == 4
    assert chosen[Q.format(0)] == 8
    assert chosen[Q.format(1)] == 16 and chosen[FIN.format(1)] == 16
    assert chosen["classifier"] == 32
    assert chosen["bert.embeddings.word_embeddings"] == 8
    bake(tiny_bert)
    w16 = tiny_bert.get_submodule(Q.format(1)).weight
    assert torch.equal(w16, w16.half().float())


@pytest.mark.parametrize("bits", [4, 2 + 6])
def test_cluster_quant_distinct_values_per_layer(tiny_bert, bits):
    quantize_weights(tiny_bert, QuantConfig(bits=bits, scheme="cluster", act_bits=None))
    bake(tiny_bert)
    for name, w in _weights(tiny_bert).items():
        assert w.unique().numel() <= 2**bits, name
    emb = tiny_bert.bert.embeddings.word_embeddings.weight
    assert emb.unique().numel() <= 2**bits
    assert model_stats(tiny_bert).layers[1].scheme == "cluster"


def test_cluster_keeps_pruned_zeros(tiny_bert):
    magnitude_prune(tiny_bert, PruneConfig(sparsity=0.6))
    quantize_weights(tiny_bert, QuantConfig(bits=4, scheme="cluster", act_bits=None))
    bake(tiny_bert)
    w = tiny_bert.get_submodule(FIN.format(0)).weight
    assert w.unique().numel() <= 16 and 0.0 in w.unique()
    assert model_stats(tiny_bert).sparsity == pytest.approx(0.6, abs=1e-3)


def test_stored_bytes_follow_bit_packing(tiny_bert):
    fp32 = model_stats(tiny_bert)
    assert fp32.stored_bytes == fp32.parameters * 4
    int8 = tiny_bert
    quantize_weights(int8, QuantConfig(bits=8, act_bits=None))
    s8 = model_stats(bake(int8))
    quantized = sum(info.parameters for info in s8.layers)
    rows = sum(int(int8.get_submodule(info.module).weight.shape[0]) for info in s8.layers)
    other = fp32.parameters - quantized
    assert s8.stored_bytes == other * 4 + quantized + rows * 4
    assert s8.parameters == fp32.parameters


def test_sparse_layers_count_bitmap_and_nonzeros(tiny_bert):
    magnitude_prune(tiny_bert, PruneConfig(sparsity=0.9, scope="layer"))
    bake(tiny_bert)
    stats = model_stats(tiny_bert)
    info = next(i for i in stats.layers if i.module == FIN.format(0))
    n = 128 * 64
    nnz = n - round(0.9 * n)
    assert info.stored_bytes == -(-n // 8) + nnz * 4
    assert stats.nonzero_parameters < stats.parameters


@pytest.mark.parametrize("k", [2, 4, 16])
def test_kmeans_1d_is_a_lloyd_fixed_point(k: int) -> None:
    """Every centroid is the mean of the values nearest to it (a Lloyd fixed point, what
    the sorted prefix-sum fit must reach), centroids are sorted, and a seed repeats."""
    from paretoedge.compression._modules import kmeans_1d

    gen = torch.Generator().manual_seed(1)
    values = torch.cat([torch.randn(20_000, generator=gen) * 0.05, torch.zeros(5_000)])
    c = kmeans_1d(values, k, iters=200)
    assert c.shape == (k,) and torch.all(c[1:] > c[:-1])
    nearest = torch.argmin((values[:, None] - c[None, :]).abs(), dim=1)
    for i in range(k):
        mine = values[nearest == i].double()
        assert mine.numel() > 0
        assert float(c[i]) == pytest.approx(float(mine.mean()), abs=1e-6)
    assert torch.equal(c, kmeans_1d(values, k, iters=200))
