"""The CPU recipe: a small 1-D SNIP pretrained in under an hour on a 2-core machine (results/pretrain/).

  python -m snipjax.train --config configs/cpu_1d.py --workdir runs/pretrain_cpu_1d

Hardware: a 2-core CPU, about 55 minutes. The paper's data and architecture family, shrunk to two 2-layer
encoders of width 64, with four departures from the official recipe that a short CPU run needs (results/pretrain/
has the ablation): points read as value features (symlog(v) and its sines and cosines) instead of float-token
embeddings, which a short run cannot learn for 10,000 mantissas; AdamW at 2e-3 with a 5% warmup and cosine
decay instead of Adam at 4e-5 with a 10k-step warmup (whose learning rate is still near 1e-6 when a CPU run
ends); the CLIP loss (L2-normalised latents, learned temperature) instead of raw dot products at τ = 1; and
masked pooling with symbols cut at 80 positions (1-D expressions need at most about 65), 1.5x faster.
Batch 64, 7,000 steps (448k pairs, 0.7% of the paper's 60M).

What it should reach: held-out 256-way retrieval top-1 well above chance (1/256 ≈ 0.004) in both directions;
results/pretrain/README.md records what it reached.
"""

from configs.tiny import get_config as tiny_config


def get_config():
    config = tiny_config()
    config.model.point_input = "values"
    config.loss.kind = "clip"
    config.model.pool_mask = True
    config.data.max_len = 80
    config.optim.kind = "adamw_cosine"
    config.optim.lr = 2e-3
    config.optim.warmup_steps = 350
    config.batch_size = 64
    config.total_steps = 7000
    config.log_every = 50
    config.eval_every = 250
    config.checkpoint_every = 500
    return config
