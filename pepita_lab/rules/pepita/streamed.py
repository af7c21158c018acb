"""Streamed PEPITA (config `streamed`, `passes.pepita_passes(streamed=True)`): which
configs it refuses and its cost model.

Options that apply (each layer-local): sign, output_error, conv nets and conv_update,
dropout, biases, normalize (a layer's batch norm needs only that layer), the forward variant
(presynaptic factors from the clean pass), weight mirroring (it changes F between steps),
precision. Refused (`check_streamed`): the time-local variant (its modulated pass runs on
weights updated by a whole clean pass) and torch.compile (the step is a Python loop of
updates).
"""

from __future__ import annotations

from ..interface import Cost

REFUSED = {"pepita_variant": ("time-local", "its modulated pass runs on weights already "
                              "updated by a whole clean pass"),
           "compile": (None, "the streamed step is a Python loop of per-layer updates; "
                             "use compile='off'")}


def check_streamed(cfg) -> str | None:
    """Why `cfg` (with `streamed`) cannot stream, in one line, or None if it can."""
    if not getattr(cfg, "streamed", False):
        return None
    if cfg.pepita_variant == "time-local":
        return f"streamed=True is not allowed with pepita_variant='time-local': " \
               f"{REFUSED['pepita_variant'][1]}"
    if cfg.compile != "off":
        return f"streamed=True is not allowed with compile={cfg.compile!r}: " \
               f"{REFUSED['compile'][1]}"
    return None


def streamed_step_cost(plain: Cost, sizes: list[int], batch_size: int,
                       output_error: str = "modulated",
                       layer_macs: list[int] | None = None) -> Cost:
    """The streamed step's cost from the plain step's (`rule.Pepita.step_cost`): sizes [d, n_1,
    ..., C] (a conv layer's n_l: its map's units), `layer_macs` the per-sample multiply-adds
    of each layer (default n_l n_{l-1}).
    MACs: the plain step's + B sum_{hidden l} M_l (the clean pass again through the hidden
    layers), - B M_L with output_error "clean" (the modulated output is not computed).
    Activation floats: the widest layer's B (n_{l-1} + 3 n_l) (its modulated input, h_l,
    h_l^err and delta_l; n_0 = d for x_err), or at the output B (n_{L-1} + 2 C)."""
    B = int(batch_size)
    macs = layer_macs or [a * b for a, b in zip(sizes, sizes[1:])]
    extra = B * sum(macs[:-1]) - (B * macs[-1] if output_error == "clean" else 0)
    floats = B * max([a + 3 * b for a, b in zip(sizes[:-2], sizes[1:-1])]
                     + [sizes[-2] + 2 * sizes[-1]])
    return Cost(plain.macs + extra, floats, 4 * floats)


__all__ = ["check_streamed", "streamed_step_cost"]
