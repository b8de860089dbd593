"""Update rates of several algorithm configurations, timed in interleaved rounds in one process.

    python benchmarks/update_ab.py droq droq:dropout_rate=0.0 droq:layer_norm=False [--rounds 5] [--repeats 40]
    python benchmarks/update_ab.py crossq:critic_hidden_sizes=256,256 crossq:critic_hidden_sizes=256,256:constant-ones

Each argument is `algo[:field=value]...` (SACConfig.build fields or the algorithm's own, values parsed as in
the CLI: ints, floats, booleans, comma lists) on HalfCheetah-v5 shapes (obs 17, action 6), 1 seed, the
trainer's jitted update as `softac bench` times it (`softac.throughput.UpdateTimer`). The modifier
`constant-ones` builds that variant with `softac.layers._sum_leading` as it was before 2026-12-03: the batch
sums as a product with a constant (unbatched) ones array, which vmap folds into a transposed product.
The modifier `automatic-linear-gradient` builds it with the dense layers' product as it was before
2026-12-04 (`softac.layers.linear` with JAX's automatic gradient, whose weight gradient XLA transposes late), and
`shared-inputs` with the critic ensembles as they were before that day (every member on the same, unbatched
inputs rather than a copy each: `softac.networks.member_inputs`). The modifier `one-update-per-call` times the
update one gradient step per call, as `UpdateTimer` did before 2026-12-04 evening, rather than as training
calls it (the gradient steps of one env step per call: 20 for DroQ and REDQ, 2 for SimbaV2).
Variants are timed in turn, round after round, so load on a shared machine falls on all of them alike; the
median over rounds is printed with XLA's FLOPs per update. A/B ratios from one run are the figures to quote.
"""

from __future__ import annotations

import argparse
import statistics

import flax.linen as nn
import jax.numpy as jnp

import softac.layers as layers
import softac.networks as networks
from softac.algos.registry import make_agent
from softac.config import SACConfig
from softac.throughput import UpdateTimer


def constant_ones_sum_leading(x):
    """The former `softac.layers._sum_leading`: sum over the leading axes with a constant ones array."""
    lead = list(range(x.ndim - 1))
    return jnp.tensordot(jnp.ones(x.shape[:-1], x.dtype), x, axes=(lead, lead))


def automatic_linear(x, kernel):
    """The dense layers' product before 2026-12-04: x @ W with JAX's automatic gradient, which computes dL/dW
    transposed ([out, in]) and leaves XLA to transpose it in Adam's moment updates."""
    return x @ kernel


def shared_input_ensemble_of(module, size: int):
    """The critic ensembles before 2026-12-04: every member applied to the same, unbatched inputs (in_axes=None),
    which vmap folds into the first layer's product as [B, in] . [in, N out]."""
    return nn.vmap(module, variable_axes={"params": 0, "batch_stats": 0}, split_rngs={"params": True, "dropout": True},
                   in_axes=None, out_axes=0, axis_size=size)


def parse_value(text: str):
    if text in ("True", "true", "False", "false"):
        return text.lower() == "true"
    if "," in text:
        return tuple(parse_value(part) for part in text.split(",") if part)
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_variant(spec: str):
    algo, *parts = spec.split(":")
    fields = dict(part.split("=", 1) for part in parts if "=" in part)
    modifiers = {part for part in parts if "=" not in part}
    unknown = modifiers - {"constant-ones", "automatic-linear-gradient", "shared-inputs", "one-update-per-call"}
    if unknown:
        raise SystemExit(f"update_ab.py: unknown modifier {sorted(unknown)[0]!r} in {spec!r}.")
    return algo, {k: parse_value(v) for k, v in fields.items()}, modifiers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=40, help="updates per timing")
    args = parser.parse_args()
    timers = {}
    real_sum_leading = layers._sum_leading
    real_linear = layers.linear
    real_ensemble_of, real_member_inputs = networks.ensemble_of, networks.member_inputs
    for spec in args.variants:
        algo, fields, modifiers = parse_variant(spec)
        layers._sum_leading = constant_ones_sum_leading if "constant-ones" in modifiers else real_sum_leading
        layers.linear = automatic_linear if "automatic-linear-gradient" in modifiers else real_linear
        if "shared-inputs" in modifiers:
            networks.ensemble_of, networks.member_inputs = shared_input_ensemble_of, lambda inputs, size: inputs
        try:
            timer = UpdateTimer(make_agent(SACConfig.build(algo=algo, env="HalfCheetah-v5", **fields), 17, 6),
                                updates_per_call=1 if "one-update-per-call" in modifiers else None)
            timer.updates_per_second(3)  # compile and trace under the patched layer
        finally:
            layers._sum_leading = real_sum_leading
            layers.linear = real_linear
            networks.ensemble_of, networks.member_inputs = real_ensemble_of, real_member_inputs
        timers[spec] = timer
    rates = {spec: [] for spec in timers}
    for _ in range(args.rounds):
        for spec, timer in timers.items():
            rates[spec].append(timer.updates_per_second(args.repeats))
    width = max(map(len, timers))
    print(f"{'variant':{width}s}  updates/s (median of {args.rounds})  ms/update  MFLOP/update")
    for spec, timer in timers.items():
        rate = statistics.median(rates[spec])
        print(f"{spec:{width}s}  {rate:10.1f}                  {1e3 / rate:7.2f}  {timer.flops / 1e6:9.0f}")


if __name__ == "__main__":
    main()
