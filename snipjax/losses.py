"""Contrastive losses between numeric and symbolic latents, with retrieval metrics.

Written over the global batch: positives are row-wise dot products (no `diag`), so the loss shards along the
batch and the compiler inserts the gathers the B×B similarity needs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from snipjax.models.snip import LOSS_KINDS

Array = jax.Array

KINDS = LOSS_KINDS
CLIP_MAX_SCALE = 100.0  # CLIP clips its learned logit scale at 100


def _normalize(z: Array) -> Array:
    return z * jax.lax.rsqrt(jnp.maximum(jnp.sum(z * z, axis=-1, keepdims=True), 1e-12))


def compared_latents(z_numeric: Array, z_symbolic: Array, kind: str) -> tuple[Array, Array]:
    """The latents as the loss `kind` compares them: raw for 'infonce' (dot products), unit length for 'clip'
    and 'siglip' (cosines)."""
    if kind == "infonce":
        return z_numeric, z_symbolic
    return _normalize(z_numeric), _normalize(z_symbolic)


def contrastive_loss(out: dict[str, Array], kind: str, logits_sharding=None) -> tuple[Array, dict[str, Array]]:
    """Loss and metrics of a batch of matched pairs (row i of `z_numeric` matches row i of `z_symbolic`).

    - 'infonce' (official): logits = z_n·z_s * logit_scale (= 1/τ), symmetric cross-entropy.
    - 'clip': the same on L2-normalised latents, logit_scale learned and clipped at 100.
    - 'siglip': independent sigmoid loss per pair, logits = cos·logit_scale + logit_bias.
    `logits_sharding`: out_sharding of the B×B similarity matmul (needed under explicit mesh axis types).
    Metrics: loss; top1/top5 retrieval accuracy numeric→symbolic (`*_n2s`) and symbolic→numeric (`*_s2n`);
    mean similarity of matched (`pos_sim`) and unmatched (`neg_sim`) pairs (cosine for clip/siglip);
    the logit scale in use (`logit_scale`); the mean L2 norm of the raw latents (`z_norm_n`, `z_norm_s`).
    """
    if kind not in KINDS:
        raise ValueError(f"loss kind must be one of {KINDS}, got {kind!r}")
    z_n = out["z_numeric"].astype(jnp.float32)
    z_s = out["z_symbolic"].astype(jnp.float32)
    latent_norms = {"z_norm_n": jnp.mean(jnp.linalg.norm(z_n, axis=-1)),
                    "z_norm_s": jnp.mean(jnp.linalg.norm(z_s, axis=-1))}
    z_n, z_s = compared_latents(z_n, z_s, kind)
    scale = out["logit_scale"].astype(jnp.float32)
    if kind == "clip":
        scale = jnp.minimum(scale, CLIP_MAX_SCALE)
    bias = out["logit_bias"].astype(jnp.float32)

    def similarities(queries: Array, candidates: Array) -> Array:
        return jnp.einsum("id,jd->ij", queries, candidates, precision="highest", out_sharding=logits_sharding)

    # Each direction gets its own B×B matrix (the second is the transpose of the first), so every reduction
    # below runs along rows and stays local to a batch-sharded row block.
    sim_n2s, sim_s2n = similarities(z_n, z_s), similarities(z_s, z_n)
    positive = jnp.sum(z_n * z_s, axis=-1)  # [B]: the matched pairs' similarity
    positive_logits = positive * scale + bias
    batch = z_n.shape[0]

    if kind == "siglip":
        # Count every pair as a negative, then swap the matched pairs' term for the positive one.
        negative_nll = -jnp.sum(jax.nn.log_sigmoid(-(sim_n2s * scale + bias)))
        correction = jnp.sum(jax.nn.log_sigmoid(-positive_logits) - jax.nn.log_sigmoid(positive_logits))
        loss = (negative_nll + correction) / batch
    else:
        def cross_entropy(similarity: Array) -> Array:
            return jnp.mean(jax.nn.logsumexp(similarity * scale + bias, axis=1) - positive_logits)

        loss = (cross_entropy(sim_n2s) + cross_entropy(sim_s2n)) / 2

    off_diagonal = jnp.arange(batch)[:, None] != jnp.arange(batch)[None, :]

    def rank(similarity: Array) -> Array:
        # Other candidates scoring at least as high as the match: a tie is a miss, so collapsed latents
        # retrieve nothing. The match's own entry is left out, since the matrix product can round it away
        # from the row-wise `positive`.
        return jnp.sum((similarity >= positive[:, None]) & off_diagonal, axis=1)

    rank_n2s, rank_s2n = rank(sim_n2s), rank(sim_s2n)
    metrics = {
        "loss": loss,
        "top1_n2s": jnp.mean(rank_n2s < 1),
        "top5_n2s": jnp.mean(rank_n2s < 5),
        "top1_s2n": jnp.mean(rank_s2n < 1),
        "top5_s2n": jnp.mean(rank_s2n < 5),
        "pos_sim": jnp.mean(positive),
        "neg_sim": (jnp.sum(sim_n2s) - jnp.sum(positive)) / max(batch * (batch - 1), 1),
        "logit_scale": scale,
        **latent_norms,
    }
    return loss, metrics
