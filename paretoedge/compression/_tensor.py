"""Tensor decomposition (CP, Tucker, tensor train) of embeddings and Q/K/V projections.

The decompositions come from tensorly (``parafac``, ``tucker``, ``tensor_train``, numpy
backend, SVD initialisation, so they are deterministic); this module only arranges the
weights into tensors and the factors into modules that compute *with the factors*, so the
exported graph holds the factors and the hardware model costs their kernels:

* Word embeddings, V x H viewed as (V, h1, h2) with h1 * h2 = H. A token gathers one row
  of the first factor (V x r) and expands it through a chain of small matmuls:
  CP ``(a_v * B) @ C^T``, Tucker ``B @ (a_v G) @ C^T``, TT ``(g_v @ G2) @ G3``.
  Only the V x r gather scales with the vocabulary; the rest is per-token compute.
* Attention: a layer's query, key and value weights stacked as (3, H, H). Every method
  gives ``W_p = Up · Mid_p · Down`` with ``Down`` (r x H) and ``Up`` shared by the three
  projections and a small per-projection ``Mid_p``: CP a diagonal (a scale vector), Tucker
  an r x r core slice, TT the outer product with the first core's row. Each projection
  keeps its own bias. The shared ``Down``/``Up`` are ``nn.Linear`` modules owned by the
  query projection (so pruning and quantisation see them as attention Linears).

A target is only replaced where the factors have fewer parameters than the original.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from paretoedge.compression import _arch
from paretoedge.compression._extra_config import TensorConfig
from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from paretoedge.compression._context import CompressContext

log = logging.getLogger(__name__)

_CP_ITERS = 25
_TUCKER_ITERS = 5


def _tensorly() -> Any:
    try:
        import tensorly as tl
    except ImportError:
        raise ConfigError(
            "tensor.method", "tensorly", "available after pip install 'paretoedge[tensor]'"
        ) from None
    tl.set_backend("numpy")
    return tl


def split_dim(h: int) -> tuple[int, int]:
    """``h = h1 * h2`` with h1 the largest divisor <= sqrt(h) (384 -> 16 x 24)."""
    h1 = max(d for d in range(1, math.isqrt(h) + 1) if h % d == 0)
    return h1, h // h1


def decompose(array: np.ndarray, method: str, rank: int) -> dict[str, np.ndarray]:
    """Decompose a 3-way array with tensorly; the rank of every mode is capped at its size.

    Returns the factors by name: CP ``a, b, c`` (weights folded into ``a``); Tucker
    ``core, a, b, c``; TT ``g1 (n0 x r1), g2 (r1 x n1 x r2), g3 (r2 x n2)``.
    """
    tl = _tensorly()
    x = tl.tensor(np.asarray(array, dtype=np.float64))
    with warnings.catch_warnings():
        # tensorly warns when a rank exceeds a mode's size and caps it, which is intended
        warnings.simplefilter("ignore", UserWarning)
        return _decompose(x, method, rank)


def _decompose(x: Any, method: str, rank: int) -> dict[str, np.ndarray]:
    from tensorly.decomposition import parafac, tensor_train, tucker

    n0, n1, n2 = x.shape
    if method == "cp":
        weights, (a, b, c) = parafac(
            x, rank=rank, init="svd", n_iter_max=_CP_ITERS, tol=1e-7, random_state=0
        )
        return {"a": np.asarray(a) * np.asarray(weights)[None, :], "b": b, "c": c}
    if method == "tucker":
        ranks = [min(rank, n0), min(rank, n1), min(rank, n2)]
        core, (a, b, c) = tucker(
            x, rank=ranks, init="svd", n_iter_max=_TUCKER_ITERS, random_state=0
        )
        return {"core": core, "a": a, "b": b, "c": c}
    r1 = min(rank, n0, n1 * n2)
    r2 = min(rank, n2, n0 * n1)
    g1, g2, g3 = tensor_train(x, rank=[1, r1, r2, 1])
    return {"g1": np.asarray(g1)[0], "g2": np.asarray(g2), "g3": np.asarray(g3)[:, :, 0]}


def reconstruct(method: str, f: dict[str, np.ndarray]) -> np.ndarray:
    """The full 3-way tensor of factors from :func:`decompose` (tests, error reports)."""
    if method == "cp":
        return np.einsum("ir,jr,kr->ijk", f["a"], f["b"], f["c"])
    if method == "tucker":
        return np.einsum("abc,ia,jb,kc->ijk", f["core"], f["a"], f["b"], f["c"])
    return np.einsum("ia,ajb,bk->ijk", f["g1"], f["g2"], f["g3"])


def _param(x: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32))


class FactoredEmbedding(nn.Module):
    """A V x H word embedding computed from its (V, h1, h2) decomposition (module docstring).

    Parameters are the factors themselves: ``first`` (V x r, the only gathered table), then
    CP ``b, c``; Tucker ``core, b, c``; TT ``g2, g3``.
    """

    def __init__(
        self,
        method: str,
        num_embeddings: int,
        h1: int,
        h2: int,
        factors: dict[str, np.ndarray],
        padding_idx: int | None = None,
    ) -> None:
        super().__init__()
        self.method = method
        self.num_embeddings = num_embeddings
        self.embedding_dim = h1 * h2
        self.h1, self.h2 = h1, h2
        self.padding_idx = padding_idx
        first = factors["g1"] if method == "tt" else factors["a"]
        self.first = _param(first)
        if method == "cp":
            self.b, self.c = _param(factors["b"]), _param(factors["c"])
        elif method == "tucker":
            self.core = _param(factors["core"])
            self.b, self.c = _param(factors["b"]), _param(factors["c"])
        else:
            self.g2, self.g3 = _param(factors["g2"]), _param(factors["g3"])

    @property
    def weight(self) -> torch.Tensor:
        """The materialised V x H matrix (HF's ``get_input_embeddings().weight`` users)."""
        ids = torch.arange(self.num_embeddings)
        return self.forward(ids)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        row = nn.functional.embedding(ids, self.first)  # [..., r]
        lead = ids.shape
        if self.method == "cp":
            out = torch.matmul(row.unsqueeze(-2) * self.b, self.c.t())  # [..., h1, h2]
        elif self.method == "tucker":
            r0, r1, r2 = self.core.shape
            mid = torch.matmul(row, self.core.reshape(r0, r1 * r2)).reshape(*lead, r1, r2)
            out = torch.matmul(torch.matmul(self.b, mid), self.c.t())
        else:
            r1, _, r2 = self.g2.shape
            mid = torch.matmul(row, self.g2.reshape(r1, self.h1 * r2))  # [..., h1 * r2]
            out = torch.matmul(mid.reshape(*lead, self.h1, r2), self.g3)
        return out.reshape(*lead, self.embedding_dim)


class StackedProjection(nn.Module):
    """One of a layer's Q/K/V projections computed as ``Up(Mid_p(Down(x))) + bias_p``.

    The query projection owns the shared ``down``/``up`` Linears; key and value reach them
    through ``owner`` (not registered, so the weights are stored once). ``mid`` is a scale
    vector (CP), an r x r matrix (Tucker) or the first TT core's row (outer product).
    """

    def __init__(
        self,
        method: str,
        mid: np.ndarray,
        bias: torch.Tensor | None,
        *,
        down: nn.Linear | None = None,
        up: nn.Linear | None = None,
        owner: StackedProjection | None = None,
    ) -> None:
        super().__init__()
        self.method = method
        self.mid = _param(mid)
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        if owner is None:
            assert down is not None and up is not None
            self.down = down
            self.up = up
        self._owner = [owner] if owner is not None else []
        shared = self._shared()
        self.in_features = shared[0].in_features
        self.out_features = shared[1].out_features

    def _shared(self) -> tuple[nn.Linear, nn.Linear]:
        src = self._owner[0] if self._owner else self
        return src.down, src.up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        down, up = self._shared()
        z = down(x)
        if self.method == "cp":
            z = z * self.mid
        elif self.method == "tucker":
            z = torch.matmul(z, self.mid.t())
        else:
            z = (self.mid.unsqueeze(-1) * z.unsqueeze(-2)).flatten(-2)
        y = up(z)
        return y + self.bias if self.bias is not None else y


def _linear(weight: np.ndarray) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
    return lin


def _stacked_parts(method: str, f: dict[str, np.ndarray]) -> tuple[Any, Any, list[np.ndarray]]:
    """(Down r x H_in, Up H_out x k, [Mid_q, Mid_k, Mid_v]) of a (3, H_out, H_in) tensor."""
    if method == "cp":
        return f["c"].T, f["b"], [f["a"][p] for p in range(3)]
    if method == "tucker":
        core = f["core"]  # [r0, r1, r2]
        mids = [np.einsum("a,abc->bc", f["a"][p], core) for p in range(3)]
        return f["c"].T, f["b"], mids
    g2 = f["g2"]  # [r1, H_out, r2]
    r1, h, r2 = g2.shape
    up = g2.transpose(1, 0, 2).reshape(h, r1 * r2)
    return f["g3"], up, [f["g1"][p] for p in range(3)]


def _count(f: dict[str, np.ndarray]) -> int:
    return int(sum(v.size for v in f.values()))


def _factor_embeddings(model: Any, config: TensorConfig) -> bool:
    fam = _arch.family(model)
    emb = model.get_submodule(fam.word_embeddings)
    if not isinstance(emb, nn.Embedding):
        raise ConfigError(
            "tensor.targets", "embeddings", "targets whose layers are not already factored"
        )
    v, h = emb.weight.shape
    h1, h2 = split_dim(h)
    w = emb.weight.detach().double().numpy().reshape(v, h1, h2)
    f = decompose(w, config.method, config.rank)
    if _count(f) >= v * h:
        log.info("tensor: embeddings kept (factors not smaller at rank %d)", config.rank)
        return False
    model.set_submodule(
        fam.word_embeddings,
        FactoredEmbedding(config.method, v, h1, h2, f, padding_idx=emb.padding_idx),
    )
    return True


def _factor_attention(model: Any, config: TensorConfig) -> int:
    done = 0
    for block in _arch.blocks(model):
        lins = [model.get_submodule(n) for n in (block.query, block.key, block.value)]
        if not all(isinstance(m, nn.Linear) for m in lins):
            raise ConfigError(
                "tensor.targets", "attention", "targets whose layers are not already factored"
            )
        shapes = {tuple(m.weight.shape) for m in lins}
        if len(shapes) != 1:
            continue  # pruned heads left Q/K/V of different shapes: nothing to stack
        stacked = np.stack([m.weight.detach().double().numpy() for m in lins])
        f = decompose(stacked, config.method, config.rank)
        down, up, mids = _stacked_parts(config.method, f)
        if down.size + up.size + sum(m.size for m in mids) >= stacked.size:
            continue
        q = StackedProjection(
            config.method, mids[0], lins[0].bias, down=_linear(down), up=_linear(up)
        )
        model.set_submodule(block.query, q)
        for name, lin, mid in zip((block.key, block.value), lins[1:], mids[1:], strict=True):
            model.set_submodule(name, StackedProjection(config.method, mid, lin.bias, owner=q))
        done += 1
    return done


def tensor_decompose(model: Any, config: TensorConfig) -> dict[str, int]:
    """Replace the targets of ``config`` in place; returns how many of each were factored."""
    out = {"embeddings": 0, "attention": 0}
    if "embeddings" in config.targets:
        out["embeddings"] = int(_factor_embeddings(model, config))
    if "attention" in config.targets:
        out["attention"] = _factor_attention(model, config)
    log.info("tensor %s rank %d: %s", config.method, config.rank, out)
    return out


def run_tensor(ctx: CompressContext, config: TensorConfig) -> bool:
    """The ``tensor`` step; applied when some target was factored."""
    return sum(tensor_decompose(ctx.model, config).values()) > 0
