"""The modules and weight parametrisations the transforms put into a model.

Masks and fake quantisers are ``torch.nn.utils.parametrize`` parametrisations of a
layer's ``weight``: the float weight stays trainable underneath, every forward sees the
masked/quantised one, so pruning masks survive fine-tuning and quantisation-aware
training gets a straight-through estimator. :func:`bake` writes the parametrised values
into plain weights (before saving or exporting).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize


class LowRankLinear(nn.Module):
    """``up(down(x))``: a Linear factored into rank-r ``down`` (no bias) and ``up``."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class LowRankEmbedding(nn.Module):
    """``proj(embed(ids))``: a V x H embedding factored into V x r and an r -> H Linear."""

    def __init__(
        self, num_embeddings: int, embedding_dim: int, rank: int, padding_idx: int | None = None
    ) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.rank = rank
        self.padding_idx = padding_idx
        self.embed = nn.Embedding(num_embeddings, rank, padding_idx=padding_idx)
        self.proj = nn.Linear(rank, embedding_dim, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embed(ids))


class Mask(nn.Module):
    """Parametrisation multiplying the weight by a fixed 0/1 mask (pruning)."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.float32))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


#: Ternary threshold as a fraction of the row's mean |w| (Li & Liu, Ternary Weight Networks:
#: 0.7 E|w| approximately minimises the L2 error for Gaussian and uniform weights).
TERNARY_DELTA = 0.7


def binarize(w: torch.Tensor) -> torch.Tensor:
    """1 bit: ``sign(w) * alpha`` per row, ``alpha`` the row's mean |w| (the L2-optimal
    scale, XNOR-Net/BinaryBERT). Exact zeros (pruned weights) stay 0; a sparse layer is
    stored with its occupancy bitmap, so they cost no extra code."""
    alpha = w.abs().sum(dim=1, keepdim=True) / (w != 0).sum(dim=1, keepdim=True).clamp_min(1)
    return torch.sign(w) * alpha


def ternarize(w: torch.Tensor) -> torch.Tensor:
    """2 bits: ``{-alpha, 0, +alpha}`` per row. Weights with ``|w| <= delta`` become 0,
    ``delta = TERNARY_DELTA * mean|w|`` (a statistics-based threshold, TWN's approximation
    as TernaryBERT uses it; not a learned parameter: under QAT it is recomputed from the
    float weights at every forward pass); ``alpha`` is the mean |w| of the weights kept
    (the L2-optimal scale for that support)."""
    delta = TERNARY_DELTA * w.abs().mean(dim=1, keepdim=True)
    keep = w.abs() > delta
    alpha = (w.abs() * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True).clamp_min(1)
    return torch.sign(w) * keep * alpha


def uniform_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-row (output channel) quantise-dequantise to ``bits``; 0 stays 0.

    1 bit is :func:`binarize` and 2 bits :func:`ternarize` (a symmetric 2-bit grid has
    only {-1, 0, 1} anyway; the ternary threshold places its zero band far better than
    rounding at half the row maximum).
    """
    if bits == 1:
        return binarize(w)
    if bits == 2:
        return ternarize(w)
    qmax = 2 ** (bits - 1) - 1
    scale = w.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / qmax
    return torch.clamp(torch.round(w / scale), -qmax, qmax) * scale


class UniformFakeQuant(nn.Module):
    """Parametrisation: per-channel symmetric fake quantisation with a straight-through
    estimator (the forward sees quantised values, the gradient flows to the float weight)."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.bits == 32:
            return w
        if self.bits == 16:
            q = w.detach().to(torch.float16).to(w.dtype)
        else:
            q = uniform_quantize(w.detach(), self.bits)
        # q + (w - w.detach()) is exactly q in value and has the gradient of w (STE).
        return q + (w - w.detach())


def kmeans_1d(values: torch.Tensor, k: int, *, iters: int = 30, seed: int = 0) -> torch.Tensor:
    """Sorted 1-D k-means centroids of ``values`` (linear initialisation, Lloyd updates).

    Deterministic: large tensors are fitted on a seeded sample of 2^20 values. The fit
    runs on the CPU whatever the device of ``values`` (so a codebook does not depend on
    it); the centroids come back on the device of ``values``.

    Why sorted: in one dimension a cluster is a run of the sorted values, so after one sort
    each Lloyd step is a binary search per boundary and a difference of prefix sums (kept
    in float64) instead of a pass over every value: a 4-bit codebook of a MiniLM FFN matrix
    costs milliseconds instead of a second, which matters when a screening pool builds
    hundreds of cluster variants.
    """
    cpu = torch.device("cpu")
    v = values.detach().flatten().to(cpu, torch.float32)
    if v.numel() > 2**20:
        # drawn with replacement: a permutation of a 12M-value embedding cost 0.3 s
        gen = torch.Generator(device=cpu).manual_seed(seed)
        v = v[torch.randint(v.numel(), (2**20,), generator=gen, device=cpu)]
    lo, hi = float(v.min()), float(v.max())
    if k <= 1 or lo == hi:
        return torch.tensor([v.mean().item()], device=values.device)
    v, _ = torch.sort(v)
    prefix = torch.zeros(v.numel() + 1, dtype=torch.float64)
    torch.cumsum(v.to(torch.float64), 0, out=prefix[1:])
    c = torch.linspace(lo, hi, k, device=cpu)
    for _ in range(iters):
        # cluster i holds the values in (b[i-1], b[i]]: the ends of its run in sorted order
        ends = torch.searchsorted(v, (c[1:] + c[:-1]) / 2, right=True)
        bounds = torch.cat([ends.new_zeros(1), ends, ends.new_full((1,), v.numel())])
        counts = bounds[1:] - bounds[:-1]
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        means = (sums / counts.clamp_min(1)).to(torch.float32)
        new, _ = torch.sort(torch.where(counts > 0, means, c))
        if torch.allclose(new, c, atol=1e-9, rtol=0):
            c = new
            break
        c = new
    return c.to(values.device)


class ClusterFakeQuant(nn.Module):
    """Parametrisation: every weight snaps to its nearest codebook value (weight sharing).

    Zeros (pruned weights) stay exactly zero and count as one of the 2^bits values, so a
    layer never holds more than 2^bits distinct values. Straight-through gradient.
    """

    codebook: torch.Tensor

    def __init__(self, codebook: torch.Tensor, keep_zero: bool) -> None:
        super().__init__()
        self.register_buffer("codebook", codebook.to(torch.float32))
        self.keep_zero = keep_zero

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        c = self.codebook
        idx = torch.bucketize(w.detach(), (c[1:] + c[:-1]) / 2)
        q = c[idx]
        if self.keep_zero:
            q = torch.where(w.detach() == 0, torch.zeros_like(q), q)
        # q + (w - w.detach()) is exactly q in value and has the gradient of w (STE).
        return q + (w - w.detach())


class ActQuantizer(nn.Module):
    """Per-tensor asymmetric uint8 fake quantisation of a Linear's input.

    Observes min/max while ``observing`` (calibration), then quantises with the frozen
    scale and zero point. Exported to ONNX as QuantizeLinear/DequantizeLinear.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("zero_point", torch.zeros((), dtype=torch.int32))
        self.register_buffer("lo", torch.full((), float("inf")))
        self.register_buffer("hi", torch.full((), float("-inf")))
        self.observing = False
        self.enabled = True

    def observe(self, x: torch.Tensor) -> None:
        self.lo = torch.minimum(self.lo, x.detach().min())
        self.hi = torch.maximum(self.hi, x.detach().max())

    def freeze(self) -> None:
        lo = torch.clamp(self.lo, max=0.0)
        hi = torch.clamp(self.hi, min=0.0)
        scale = ((hi - lo) / 255.0).clamp_min(1e-8)
        self.scale = scale.reshape(())
        self.zero_point = torch.clamp(torch.round(-lo / scale), 0, 255).to(torch.int32).reshape(())
        self.observing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self.observe(x)
            return x
        if not self.enabled:
            return x
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, 0, 255)


def _act_pre_hook(module: Any, args: tuple) -> tuple:
    return (module.act_quant(args[0]), *args[1:])


def attach_act_quantizer(linear: Any) -> ActQuantizer:
    """Give ``linear`` an ``act_quant`` child applied to its input by a forward pre-hook."""
    if not hasattr(linear, "act_quant"):
        linear.act_quant = ActQuantizer()
        linear.register_forward_pre_hook(_act_pre_hook)
    quantizer: ActQuantizer = linear.act_quant
    return quantizer


def bake(model: nn.Module) -> nn.Module:
    """Replace every parametrised weight by its current (masked/quantised) value, in place.

    Weights tied across modules (cross-layer sharing) stay tied: their parametrisations
    share one ``original`` (and compute the same value), and every module gets the same
    baked parameter.
    """
    modules: list[Any] = list(model.modules())
    baked: dict[int, nn.Parameter] = {}
    for module in modules:
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                key = id(module.parametrizations[name].original)
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                if key in baked:
                    module.register_parameter(name, baked[key])
                else:
                    baked[key] = getattr(module, name)
    return model


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy whose parametrised modules have classes of their own.

    Why: ``torch.nn.utils.parametrize`` gives a parametrised module a generated class that
    holds the parametrised property, and ``copy.deepcopy`` shares that class with the copy;
    baking the copy (``remove_parametrizations``) deletes the property from the shared class
    and so breaks the original (``'ParametrizedLinear' object has no attribute
    'weight'``). Each copied module gets a fresh class with the same contents instead.
    """
    import copy

    work = copy.deepcopy(model)
    for module in work.modules():
        if parametrize.is_parametrized(module):
            cls = type(module)
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
    return work


def weight_of(module: nn.Module) -> torch.Tensor:
    """The effective weight (parametrisations applied)."""
    return module.weight  # type: ignore[return-value]


_MASK = 0xFFFFFFFF
_MULT = 0x45D9F3B


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (multiply-xorshift) of non-negative int64 values < 2^32."""
    x = ((x >> 16) ^ x) * _MULT & _MASK
    x = ((x >> 16) ^ x) * _MULT & _MASK
    return (x >> 16) ^ x


def hash_tables(
    out_features: int, in_features: int, size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(bucket index [out, in] in [0, size), sign [out, in] in {-1, 1}) for ``seed``.

    A pure function of the shape, ``size`` and ``seed``: a device rebuilds the tables from
    the seed, so they are never stored.
    """
    key = torch.arange(out_features * in_features, dtype=torch.int64)
    salt = (seed * 2 + 1) & _MASK
    bucket = _mix(key ^ salt) % size
    sign = (_mix(key ^ ((salt * 7 + 3) & _MASK)) & 1) * 2 - 1
    shape = (out_features, in_features)
    return bucket.view(shape), sign.view(shape).to(torch.float32)


class HashedLinear(nn.Module):
    """A Linear whose weight is ``sign * real[bucket]`` (HashedNets, see ``_hash.py``).

    ``real`` and ``bias`` are the parameters; ``bucket`` and ``sign`` are rebuilt from
    ``seed`` and not saved (non-persistent buffers).
    """

    bucket: torch.Tensor
    sign: torch.Tensor

    def __init__(
        self, in_features: int, out_features: int, size: int, seed: int, bias: bool = True
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.size, self.seed = size, seed
        self.real = nn.Parameter(torch.zeros(size))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        bucket, sign = hash_tables(out_features, in_features, size, seed)
        self.register_buffer("bucket", bucket, persistent=False)
        self.register_buffer("sign", sign, persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.sign * self.real[self.bucket]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)

    @torch.no_grad()
    def project(self, weight: torch.Tensor) -> None:
        """Set ``real`` to the least-squares fit of ``weight`` (mean of sign*w per bucket)."""
        flat = self.bucket.flatten()
        sums = torch.zeros(self.size).index_add_(0, flat, (self.sign * weight).flatten())
        counts = torch.bincount(flat, minlength=self.size).clamp_min(1)
        self.real.copy_(sums / counts)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, real={self.size}"
