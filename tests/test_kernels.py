"""The loop's batched products and layouts (`pepita_lab.kernels`, `pepita_lab.momentum`): a
member's numbers do not depend on how many members share the product (a sweep point packed
alone or with others gives the same bits), and the layout helpers keep every value."""

import pytest
import torch
from torch.nn import functional as nnf

from pepita_lab import kernels
from pepita_lab.momentum import _scaled_factors

pytestmark = pytest.mark.numerics

# (rows, inner, cols): the paper's MNIST products (first layer, F, output layer, conv net's
# output layer), a tiny net's, and products under PyTorch's 400-element threshold (its own
# loop instead of BLAS)
SHAPES = [(64, 784, 1024), (64, 10, 1024), (64, 1024, 10), (50, 4608, 10), (8, 32, 16),
          (3, 4, 5), (1024, 64, 784)]


def operands(B, n, p, shared, transposed, K=5):
    g = torch.Generator().manual_seed(B * n + p)
    a, b = torch.randn(K, B, n, generator=g), torch.randn(K, n, p, generator=g)
    if transposed:  # the layouts the loop passes (W.mT, delta.mT)
        a, b = a.mT.contiguous().mT, b.mT.contiguous().mT
    return (a[0] if shared == "a" else a), (b[0] if shared == "b" else b)


def member(t, k):
    """Member k of t as a population of one (a shared matrix as it is)."""
    return t[k:k + 1] if t.dim() == 3 else t


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("shared", ["none", "a", "b"])
@pytest.mark.parametrize("transposed", [False, True])
def test_a_member_product_is_the_same_bits_alone_or_with_others(shape, shared, transposed):
    a, b = operands(*shape, shared, transposed)
    together = kernels.mm(a, b)
    v = torch.randn(5, shape[0], shape[2], generator=torch.Generator().manual_seed(1))
    v_together = kernels.addmm_(v.clone(), a, b, beta=0.9, alpha=0.5)
    for k in range(5):
        alone = kernels.mm(member(a, k), member(b, k))
        assert alone.shape == (1, shape[0], shape[2])
        assert torch.equal(alone[0], together[k])
        v_alone = kernels.addmm_(v[k:k + 1].clone(), member(a, k), member(b, k), beta=0.9,
                                 alpha=0.5)
        assert torch.equal(v_alone[0], v_together[k])
    torch.testing.assert_close(together, torch.matmul(a, b), rtol=1e-4, atol=1e-4)


def test_one_net_products_stay_two_dimensional():
    a, b = torch.randn(4, 3), torch.randn(3, 2)
    assert torch.equal(kernels.mm(a, b), a @ b)


def test_the_learning_rate_goes_into_the_narrower_factor():
    lr = torch.tensor([0.1, 0.2]).view(2, 1, 1)
    delta, a = torch.randn(2, 8, 10), torch.randn(8, 30)  # a shared input, wider
    d, x = _scaled_factors(delta, a, lr)
    assert x is a and torch.equal(d, delta * lr)
    delta = torch.randn(2, 8, 100)  # now the input is narrower: it gets the members' K
    d, x = _scaled_factors(delta, a, lr)
    assert d is delta and x.shape == (2, 8, 30) and torch.equal(x, a * lr)


@pytest.mark.parametrize("c", [1, 3])
def test_members_maps_are_channels_last_member_by_member(c):
    x = torch.randn(2, 4, c, 5, 6)
    laid = kernels.maps_layout(x)
    assert torch.equal(laid, x)
    for k in range(2):
        assert laid[k].is_contiguous(memory_format=torch.channels_last)
    assert kernels.maps_layout(laid).data_ptr() == laid.data_ptr()  # already so: no copy


def test_unpooling_to_the_winners_equals_pytorchs():
    h = torch.randn(3, 4, 8, 6).contiguous(memory_format=torch.channels_last)
    pooled, want_idx = nnf.max_pool2d(h, 2, return_indices=True)
    idx = kernels.pool_winners(h, 2)
    assert torch.equal(idx, want_idx)
    assert torch.equal(kernels.max_unpool(pooled, idx, (8, 6)),
                       nnf.max_unpool2d(pooled, want_idx, 2, output_size=(8, 6)))
