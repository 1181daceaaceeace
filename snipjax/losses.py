"""Contrastive losses between numeric and symbolic latents, with retrieval metrics: one table of kinds.

Each kind (`KINDS`) says how it compares latents, which similarity parameters it learns (the SNIP model holds
them: `snipjax.models.snip`) and its loss over the similarities; a new loss is a new entry. Written over the
global batch: positives are row-wise dot products (no `diag`), so the loss shards along the batch and the
compiler inserts the gathers the B×B similarity needs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def _symmetric_cross_entropy(sim_n2s: Array, sim_s2n: Array, positive_logits: Array, scale, bias) -> Array:
    def cross_entropy(similarity: Array) -> Array:
        return jnp.mean(jax.nn.logsumexp(similarity * scale + bias, axis=1) - positive_logits)

    return (cross_entropy(sim_n2s) + cross_entropy(sim_s2n)) / 2


def _sigmoid(sim_n2s: Array, sim_s2n: Array, positive_logits: Array, scale, bias) -> Array:
    # Count every pair as a negative, then swap the matched pairs' term for the positive one.
    negative_nll = -jnp.sum(jax.nn.log_sigmoid(-(sim_n2s * scale + bias)))
    correction = jnp.sum(jax.nn.log_sigmoid(-positive_logits) - jax.nn.log_sigmoid(positive_logits))
    return (negative_nll + correction) / sim_n2s.shape[0]


@dataclasses.dataclass(frozen=True)
class LossKind:
    """normalized:  compare unit-length latents (cosines) rather than raw ones (dot products)
    parameters:  the learned similarity parameters and their initial values: 'log_logit_scale' (the logits'
                 scale is its exp; without it the scale is 1/temperature) and 'logit_bias' (else 0)
    max_scale:   the learned scale's ceiling, if any
    loss:        (sim_n2s, sim_s2n, positive logits [B], scale, bias) -> scalar"""

    normalized: bool
    parameters: tuple[tuple[str, float], ...]
    loss: Callable[..., Array]
    max_scale: float | None = None


KINDS = {
    "infonce": LossKind(False, (), _symmetric_cross_entropy),  # official: raw dot products / τ
    "clip": LossKind(True, (("log_logit_scale", math.log(1 / 0.07)),), _symmetric_cross_entropy, max_scale=100.0),
    "siglip": LossKind(True, (("log_logit_scale", math.log(10.0)), ("logit_bias", -10.0)), _sigmoid),
}


def loss_kind(kind: str) -> LossKind:
    if kind not in KINDS:
        raise ValueError(f"config.loss.kind must be one of {tuple(KINDS)}, got {kind!r}")
    return KINDS[kind]


def _normalize(z: Array) -> Array:
    return z * jax.lax.rsqrt(jnp.maximum(jnp.sum(z * z, axis=-1, keepdims=True), 1e-12))


def compared_latents(z_numeric: Array, z_symbolic: Array, kind: str) -> tuple[Array, Array]:
    """The latents as the loss `kind` compares them: raw (dot products) or unit length (cosines)."""
    if not loss_kind(kind).normalized:
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
    spec = loss_kind(kind)
    z_n = out["z_numeric"].astype(jnp.float32)
    z_s = out["z_symbolic"].astype(jnp.float32)
    latent_norms = {"z_norm_n": jnp.mean(jnp.linalg.norm(z_n, axis=-1)),
                    "z_norm_s": jnp.mean(jnp.linalg.norm(z_s, axis=-1))}
    z_n, z_s = compared_latents(z_n, z_s, kind)
    scale = out["logit_scale"].astype(jnp.float32)
    if spec.max_scale is not None:
        scale = jnp.minimum(scale, spec.max_scale)
    bias = out["logit_bias"].astype(jnp.float32)

    def similarities(queries: Array, candidates: Array) -> Array:
        return jnp.einsum("id,jd->ij", queries, candidates, precision="highest", out_sharding=logits_sharding)

    # Each direction gets its own B×B matrix (the second is the transpose of the first), so every reduction
    # below runs along rows and stays local to a batch-sharded row block.
    sim_n2s, sim_s2n = similarities(z_n, z_s), similarities(z_s, z_n)
    positive = jnp.sum(z_n * z_s, axis=-1)  # [B]: the matched pairs' similarity
    batch = z_n.shape[0]
    loss = spec.loss(sim_n2s, sim_s2n, positive * scale + bias, scale, bias)

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
