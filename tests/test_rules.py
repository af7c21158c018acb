"""Oracle tests: each rule's batched update against its readable per-sample form written
straight from the equations in docs/pepita.md (tests/oracles.py), and BP against
autograd."""

import pytest
import torch

from oracles import (backward_reference, bp_reference, dfa_reference, drtp_reference,
                     fa_reference, pepita_reference)
from pepita_lab.rules import (FirstLayerFeedback, bp_updates, dfa_updates, drtp_updates,
                              fa_updates, pepita_factors, pepita_passes, pepita_updates,
                              updates_from_factors)

pytestmark = pytest.mark.numerics

D = torch.float64  # oracles compare to 1e-10, not to float32 noise
SIZES = [7, 6, 5, 4]  # d, two hidden layers, C


def make_problem(seed=0, B=5, sizes=SIZES):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(sizes[i + 1], sizes[i], generator=g, dtype=D) * 0.7
               for i in range(len(sizes) - 1)]
    x = torch.rand(B, sizes[0], generator=g, dtype=D)
    y = torch.randint(0, sizes[-1], (B,), generator=g)
    target = torch.nn.functional.one_hot(y, sizes[-1]).double()
    F = torch.randn(sizes[0], sizes[-1], generator=g, dtype=D) * 0.5
    masks = [(torch.rand(B, n, generator=g, dtype=D) < 0.7).double() / 0.7 for n in sizes[1:-1]]
    return weights, x, target, F, masks


def assert_all_close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("output_error", ["modulated", "clean"])
@pytest.mark.parametrize("use_masks", [False, True])
def test_pepita_matches_per_sample_loop(sign, output_error, use_masks):
    weights, x, target, F, masks = make_problem()
    masks = masks if use_masks else None
    got = pepita_updates(weights, x, target, F, sign=sign, output_error=output_error,
                         masks=masks)
    assert_all_close(got, pepita_reference(weights, x, target, F, sign=sign,
                                           output_error=output_error, masks=masks))


def test_pepita_variants_differ():
    """The oracle comparison above would be vacuous if the options changed nothing."""
    weights, x, target, F, masks = make_problem()
    a = pepita_updates(weights, x, target, F)
    b = pepita_updates(weights, x, target, F, sign=-1.0)
    c = pepita_updates(weights, x, target, F, output_error="clean")
    assert not torch.allclose(a[0], b[0])
    assert not torch.allclose(a[-1], c[-1])


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_first_layer_from_w1f_equals_plain(sign):
    weights, x, target, F, masks = make_problem(seed=3)
    plain = pepita_factors(weights, x, target, F, sign=sign, masks=masks)
    given = pepita_passes(weights, x, target, F, sign=sign, masks=masks,
                          first_feedback=weights[0] @ F)
    assert_all_close(updates_from_factors(given), updates_from_factors(plain))


@pytest.mark.parametrize("K", [None, 3])
def test_tracked_first_layer_feedback_follows_the_momentum_update(K):
    """`W_1 F` and `v_1 F` advanced step by step equal the products recomputed from W_1 and
    v_1 after the same momentum updates (one net, or a population of K)."""
    g = torch.Generator().manual_seed(5)
    lead = () if K is None else (K,)
    W = torch.randn(*lead, 6, 7, generator=g, dtype=D)
    v = torch.randn(*lead, 6, 7, generator=g, dtype=D)
    F = torch.randn(*lead, 7, 4, generator=g, dtype=D)
    track = FirstLayerFeedback(W, v, F)
    for _ in range(5):
        delta = torch.randn(*lead, 3, 6, generator=g, dtype=D)  # (..., B, n_1)
        a = torch.randn(*lead, 3, 7, generator=g, dtype=D)  # (..., B, d)
        v.mul_(0.9).add_(delta.mT @ a, alpha=0.05)
        W.sub_(v)
        track.advance(0, delta, a, 0.9, 0.05)
        track.advance(1, delta, a, 0.9, 0.05)  # other layers' updates do not touch W_1 F
    torch.testing.assert_close(track.wf, W @ F, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(track.vf, v @ F, rtol=1e-12, atol=1e-12)
    track.recompute(W, v, F)
    assert torch.equal(track.wf, W @ F) and torch.equal(track.vf, v @ F)


def test_first_layer_feedback_is_tracked_only_where_it_saves_work():
    assert FirstLayerFeedback.applies([torch.empty(1024, 784)], 10)
    assert not FirstLayerFeedback.applies([torch.empty(16, 20)], 10)
    assert not FirstLayerFeedback.applies([torch.empty(32, 1, 5, 5)], 10)  # conv


def test_pepita_builds_no_graph_and_leaves_F_alone():
    weights, x, target, F, masks = make_problem()
    weights = [W.clone().requires_grad_(True) for W in weights]
    F_before = F.clone()
    dW = pepita_updates(weights, x, target, F, masks=masks)
    assert all(d.grad_fn is None and not d.requires_grad for d in dW)
    assert torch.equal(F, F_before)


def test_bp_matches_autograd_and_per_sample_loop():
    weights, x, target, _, _ = make_problem()
    ws = [W.clone().requires_grad_(True) for W in weights]
    h = x
    for W in ws[:-1]:
        h = torch.relu(h @ W.T)
    logits = h @ ws[-1].T
    loss = torch.nn.functional.cross_entropy(logits, target.argmax(1))
    loss.backward()
    got = bp_updates(weights, x, target)
    assert_all_close(got, [W.grad for W in ws])
    assert_all_close(got, bp_reference(weights, x, target))


def test_fa_with_true_weights_is_bp():
    weights, x, target, _, _ = make_problem()
    assert_all_close(fa_updates(weights, x, target, [W.clone() for W in weights[1:]]),
                     bp_updates(weights, x, target))


def test_fa_matches_per_sample_loop():
    weights, x, target, _, _ = make_problem()
    g = torch.Generator().manual_seed(9)
    fb = [torch.randn(W.shape, generator=g, dtype=D) for W in weights[1:]]
    assert_all_close(fa_updates(weights, x, target, fb), fa_reference(weights, x, target, fb))


@pytest.mark.parametrize("rule", ["dfa", "drtp"])
def test_direct_rules_match_per_sample_loop(rule):
    weights, x, target, _, _ = make_problem()
    g = torch.Generator().manual_seed(9)
    fb = [torch.randn(SIZES[-1], n, generator=g, dtype=D) for n in SIZES[1:-1]]
    fn = dfa_updates if rule == "dfa" else drtp_updates
    signal = (lambda e, t: e) if rule == "dfa" else (lambda e, t: t)
    # the loop written out here, and the rule's oracle
    want = backward_reference(weights, x, target, lambda l, d, e, t: fb[l].T @ signal(e, t))
    assert_all_close(fn(weights, x, target, fb), want)
    oracle = dfa_reference if rule == "dfa" else drtp_reference
    assert_all_close(oracle(weights, x, target, fb), want)


def test_no_rule_builds_a_graph():
    weights, x, target, F, _ = make_problem()
    ws = [W.clone().requires_grad_(True) for W in weights]
    fb_chain = [W.detach().clone() for W in weights[1:]]
    fb_direct = [torch.randn(SIZES[-1], n, dtype=D) for n in SIZES[1:-1]]
    for dW in (fa_updates(ws, x, target, fb_chain), dfa_updates(ws, x, target, fb_direct),
               drtp_updates(ws, x, target, fb_direct), pepita_updates(ws, x, target, F)):
        assert all(d.grad_fn is None for d in dW)


@pytest.mark.parametrize("call,match", [
    (lambda w, x, t, F: pepita_updates([w[0], w[0]], x, t, F), "do not chain"),
    (lambda w, x, t, F: bp_updates(w, x, t[:, :2]), "one-hot"),
    (lambda w, x, t, F: bp_updates(w, x[:, :3], t), "x has shape"),
    (lambda w, x, t, F: pepita_updates(w, x, t, F.T), "F has shape"),
    (lambda w, x, t, F: fa_updates(w, x, t, w[:1]), "feedback has"),
    (lambda w, x, t, F: dfa_updates(w, x, t, [W for W in w[1:3]]), r"feedback\[0\] has shape"),
    (lambda w, x, t, F: bp_updates([], x, t), "empty"),
])
def test_bad_shapes_are_refused(call, match):
    weights, x, target, F, _ = make_problem()
    with pytest.raises(ValueError, match=match):
        call(weights, x, target, F)
