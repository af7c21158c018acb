"""CPU kernels of the conv path: channels-last maps, oneDNN's convolution with the ReLU fused
in, max-pooling by strided maxima. Each returns the numbers of the plain PyTorch call it stands
in for (tested against it); elsewhere (GPUs, autograd, autocast) they fall back to that call.
Also the members' batched products (`mm`, `addmm_`) and the dropout draw
(`draw_dropout_mask`). Measurements behind each choice: docs/performance.md and docs/conv.md.
"""

from __future__ import annotations

import torch
from typing import Callable

from torch import Tensor
from torch.nn import functional as nnf


def per_member(fn: Callable[..., Tensor], *ts: Tensor | None, base: tuple[int, ...]) -> Tensor:
    """`fn(*ts)`, a 4-D conv primitive, for the leading K of members: a tensor with one dim more
    than its `base` dim (say 5 for maps and kernels, 4 by themselves) holds K members' and is
    sliced per member, one without is shared by them (the data's images). The K results stack
    to (K, ...): for K = 1 a view of the one result (no copy, its layout kept); if no tensor
    carries a K (one net's weights, as the pure rules take them), `fn(*ts)` itself."""
    K = next((t.shape[0] for t, d in zip(ts, base) if t is not None and t.dim() > d), 0)
    if not K:
        return fn(*ts)
    lead = [t is not None and t.dim() > d for t, d in zip(ts, base)]
    if K == 1:
        return fn(*[t[0] if has else t for t, has in zip(ts, lead)]).unsqueeze(0)
    return torch.stack([fn(*[t[k] if has else t for t, has in zip(ts, lead)])
                        for k in range(K)])


def max_pool(h: Tensor, pool: int) -> Tensor:
    """`max_pool2d(h, pool)` (B, c, H // pool, W // pool), the same numbers, as maxima of
    strided views (a loop over the window's offsets, not over positions): on the CPU several
    times faster than PyTorch's max-pool kernel (measured for the paper's MNIST maps at batch
    50: 0.07-0.12 ms on channels-last maps, 0.25 ms on channel-first ones, 2.5 ms for
    max_pool2d). The result keeps `h`'s layout."""
    H, W = h.shape[-2] // pool * pool, h.shape[-1] // pool * pool
    cols = h[..., :H, 0:W:pool]
    for j in range(1, pool):
        cols = torch.maximum(cols, h[..., :H, j:W:pool])  # (B, c, H, W // pool)
    out = cols[..., 0::pool, :]
    for i in range(1, pool):
        out = torch.maximum(out, cols[..., i::pool, :])
    return out


def pool_winners(h: Tensor, pool: int) -> Tensor:
    """Where each max-pool window's maximum sits (max_pool2d's indices, ties to the first), from
    a channels-last copy: PyTorch's CPU kernel is several times faster on that layout."""
    h = h.contiguous(memory_format=torch.channels_last)  # max_pool2d's own call, direct:
    return torch._C._nn.max_pool2d_with_indices(h, [pool, pool], [pool, pool])[1]


def max_unpool(g: Tensor, winners: Tensor, size: tuple[int, int]) -> Tensor:
    """`max_unpool2d(g, winners, pool, output_size=size)`: each value of g (B, c, h, w) to
    the position `winners` names in a (B, c, *size) map of zeros (PyTorch's kernel, without its
    Python wrapper's argument handling)."""
    return torch._C._nn.max_unpool2d(g, winners, list(size))


def maps_layout(x: Tensor) -> Tensor:
    """Images or conv maps (B, c, H, W), the same values laid out channels-last on the CPU
    (unchanged elsewhere). On this layout oneDNN's convolution, its weight update and the
    strided max-pool are faster and the convolution needs no reorder of its output; measured
    for the paper's MNIST maps at batch 50: max-pool 0.07 ms against 0.25 ms, `conv2d_weight`
    0.29 against 0.35 ms. A single-channel image has the same memory either way: only its
    strides are restated (no copy). Members' maps (K, B, c, H, W): each member's so."""
    if x.device.type != "cpu" or x.dim() not in (4, 5):
        return x
    c, H, W = x.shape[-3:]
    if c == 1 and x.is_contiguous():
        return x.as_strided(x.shape, (*x.stride()[:-3], 1, W, 1))
    if x.dim() == 5:  # (K, B, H, W, c) in memory
        return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    return x.contiguous(memory_format=torch.channels_last)


def channel_first(x: Tensor) -> Tensor:
    """The inverse of `maps_layout`: x (B, c, H, W) with channel-first strides."""
    B, c, H, W = x.shape
    if c == 1 and x.is_contiguous():
        return x.as_strided(x.shape, (H * W, H * W, W, 1))
    return x.contiguous()


def _fused_conv_relu(x: Tensor, W: Tensor) -> bool:
    """Whether oneDNN's convolution with a fused ReLU serves: float32 on the CPU, outside
    autograd, autocast and torch.compile (whose own fusions take over)."""
    return (x.device.type == "cpu" and x.dtype == W.dtype == torch.float32
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not (torch.is_grad_enabled() and (x.requires_grad or W.requires_grad))
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling()
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def conv_relu(x: Tensor, W: Tensor, b: Tensor | None = None) -> Tensor:
    """`relu(conv2d(x, W) + b)` (stride 1, no padding); members' (x (K, B, c, H, W) or shared,
    W (K, c', c, k, k), b (K, c')) through `per_member`. On the CPU one oneDNN call with the
    ReLU fused in (the map is written once instead of written, read and rewritten), on
    channels-last maps; elsewhere conv2d, then an in-place ReLU."""
    return per_member(_conv_relu, x, W, b, base=(4, 4, 1))


def _conv_relu(x: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
    x = maps_layout(x)
    if _fused_conv_relu(x, W):
        return torch.ops.mkldnn._convolution_pointwise(x, W, b, [0, 0], [1, 1], [1, 1], 1,
                                                       "relu", [], "")
    return nnf.conv2d(x, W, b).relu_()


def _members(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """a and b with the same leading K: a shared matrix (2-D) expanded to the other's K (a
    view)."""
    if a.dim() == 2:
        return a.expand(b.shape[0], *a.shape), b
    if b.dim() == 2:
        return a, b.expand(a.shape[0], *b.shape)
    return a, b


def mm(a: Tensor, b: Tensor) -> Tensor:
    """`a @ b` of members' matrices (K, m, n) or shared ones (m, n), one batched product
    (`torch.bmm`) whatever K: each member's result is the same bits for K = 1 as for any K
    (tests/test_kernels.py), which a sweep point packed alone or with others relies on, and
    for K = 1 `bmm` calls the one matrix product with less dispatch than `mm` on views of
    member 0 would (docs/performance.md, 0.5.0). Two shared matrices: `torch.mm`."""
    if a.dim() == b.dim() == 2:
        return torch.mm(a, b)
    return torch.bmm(*_members(a, b))


def addmm_(v: Tensor, a: Tensor, b: Tensor, *, beta: float, alpha: float) -> Tensor:
    """`v = beta v + alpha a @ b` in place, v (K, m, p), a (K, m, n) or shared, b likewise:
    one `baddbmm_`, member by member the same bits whatever K (as `mm`)."""
    K = v.shape[0]
    a = a if a.dim() == 3 else a.expand(K, *a.shape)
    b = b if b.dim() == 3 else b.expand(K, *b.shape)
    return v.baddbmm_(a, b, beta=beta, alpha=alpha)


def draw_dropout_mask(mask: Tensor, keep: float, generator: torch.Generator) -> Tensor:
    """Fill `mask` in place with `1 / keep` (with probability `keep`) or 0, from `generator`
    (one member's stream).

    A uniform draw compared with `keep`: the distribution of `bernoulli_(keep)` with keep
    rounded up to a multiple of 2^-24 (`uniform_` gives multiples of 2^-24), at about half
    `bernoulli_`'s cost on the CPU. An exact draw (24 random bits an element, ties with
    keep 2^24 resolved by 24 more) was tried in issue 32 and left out: faster alone on a
    (64, 1024) mask (0.82x), it made the paper's MNIST step about 5 % slower
    (docs/performance.md, "The dropout draw")."""
    return mask.uniform_(generator=generator).lt_(keep).div_(keep)
