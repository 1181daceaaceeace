"""KV-cached decoding against recomputing the prefix, for a model of an SR config's sizes (random weights).

  python -m snipjax.bench decode [--config configs/sr/cpu.py] [--latents 32]
"""

from __future__ import annotations

import json
import time

from absl import flags

from snipjax.config import parse_flags


def run_decode(config_path: str, n_latents: int, lengths=(32, 64, 128)) -> None:
    """Seconds to sample `n_latents` × 2 sequences of each length (no early stop: `<EOS>` is masked out) with
    the KV cache, and with a step that recomputes the whole prefix (what decoding costs without a cache);
    a model of the config's sizes with random weights."""

    import jax
    import jax.numpy as jnp

    from snipjax import models, parallel
    from snipjax.config import load_config_file
    from snipjax.data.vocab import get_vocab
    from snipjax.tasks.sr import decoding

    config = load_config_file(config_path)
    model = models.make_sr_model(config, parallel.kernels_for(config))
    vocab = get_vocab(config.data.max_dim)
    length = max(lengths)
    points = jnp.zeros((1, config.data.n_points, 3 * (config.data.max_dim + 1)), jnp.int32)
    params = model.init(jax.random.key(0), points, jnp.zeros((1, length), jnp.int32), jnp.array([length]))["params"]
    z = jax.random.normal(jax.random.key(1), (n_latents, config.model.latent_dim))
    ends = dict(bos=vocab.eos_id, eos=-1, pad=vocab.pad_id)  # eos=-1: every sequence runs to max_len

    def recompute_step(z_rows, max_len):
        def step(prefix, tokens, position):
            prefix = prefix if prefix else {"ids": jnp.zeros((z_rows.shape[0], max_len), jnp.int32)}
            ids = prefix["ids"].at[:, position].set(tokens)
            logits = model.apply({"params": params}, z_rows, ids, jnp.full((z_rows.shape[0],), position + 1),
                                 method="decode")
            return jnp.take(logits, position, axis=1), {"ids": ids}
        return step

    for max_len in lengths:
        rows = jnp.repeat(z, 2, axis=0)
        memory = model.apply({"params": params}, rows, method="memory")
        timings = {}
        steps = (("cached", decoding.model_step(model, params, memory, max_len)),
                 ("recompute", recompute_step(rows, max_len)))
        for name, step in steps:
            run = jax.jit(lambda key, step=step, rows=rows, max_len=max_len: decoding.sample(
                step, rows.shape[0], key, max_len=max_len, temperature=0.1, **ends)[0])
            run(jax.random.key(0)).block_until_ready()
            start = time.perf_counter()
            run(jax.random.key(1)).block_until_ready()
            timings[name] = time.perf_counter() - start
        print(json.dumps({"name": "decode", "config": config_path, "sequences": int(rows.shape[0]),
                          "max_len": max_len, "seconds_cached": round(timings["cached"], 4),
                          "seconds_recompute": round(timings["recompute"], 4),
                          "speedup": round(timings["recompute"] / timings["cached"], 2),
                          "backend": jax.default_backend()}), flush=True)


def main(argv: list[str]) -> int:
    """`python -m snipjax.bench decode ...`: prints its JSON lines."""
    fv = flags.FlagValues()
    flags.DEFINE_string("config", "configs/sr/cpu.py", "an SR config: the model's sizes", flag_values=fv)
    flags.DEFINE_integer("latents", 32, "latents decoded at once (2 samples each)", lower_bound=1, flag_values=fv)
    parse_flags(fv, ["bench decode", *argv], __doc__)
    run_decode(fv["config"].value, fv["latents"].value)
    return 0
