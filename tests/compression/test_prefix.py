"""A compression prefix finished for a spec is that spec's :func:`compress`, bit for bit.

The bit-width, scheme and sparsity variants of one architecture share the steps that
shape it (distillation, heads, FFN, low-rank, ...); a screening pool builds them from one
:class:`CompressionPrefix` instead of compressing the teacher again for each.
"""

from __future__ import annotations

import pytest
import torch

from paretoedge.compression import CompressionPrefix, CompressionSpec, compress, weight_facts
from paretoedge.errors import ConfigError

ARCH = {"heads.keep": 0.5, "ffn.keep": 0.5, "lowrank.rank": 8}
VARIANTS = [
    {},
    {"prune.sparsity": 0.4},
    {"quant.bits": 8},  # with its activation calibration on the task
    {"prune.sparsity": 0.6, "quant.bits": 4, "quant.scheme": "cluster"},
    {"prune.sparsity": 0.3, "prune.scope": "layer", "quant.bits": 4},
]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_prefix_finished_for_each_variant_is_compress(tiny_bert, tokenizer, small_task) -> None:
    kw = {"teacher": tiny_bert, "tokenizer": tokenizer, "task": small_task, "seed": 3}
    prefix = CompressionPrefix(tiny_bert, CompressionSpec.from_flat(ARCH), **kw)
    finished = []
    for flat in VARIANTS:
        spec = CompressionSpec.from_flat({**ARCH, **flat})
        assert prefix.shares(spec)
        got = prefix.finish(spec)
        want = compress(tiny_bert, spec, **kw)
        assert got.applied == want.applied, flat
        assert _same_weights(got.model, want.model), flat
        assert got.stats == want.stats, flat
        assert weight_facts(got.model) == weight_facts(want.model), flat
        assert got.model.paretoedge_spec == spec
        finished.append(got.model)
    # each finish worked on its own copy: the first variant is still the plain prefix
    plain = compress(tiny_bert, CompressionSpec.from_flat(ARCH), **kw).model
    assert _same_weights(finished[0], plain)


def test_a_spec_with_another_architecture_is_refused(tiny_bert, tokenizer, small_task) -> None:
    kw = {"teacher": tiny_bert, "tokenizer": tokenizer, "task": small_task}
    prefix = CompressionPrefix(tiny_bert, CompressionSpec.from_flat(ARCH), **kw)
    for other in ({**ARCH, "ffn.keep": 0.75}, {"heads.keep": 0.5, "ffn.keep": 0.5}):
        spec = CompressionSpec.from_flat(other)
        assert not prefix.shares(spec)
        with pytest.raises(ConfigError, match="prefix"):
            prefix.finish(spec)
