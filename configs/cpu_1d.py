"""The CPU recipe: a small 1-D SNIP pretrained in about 40 minutes on a 2-core machine (results/pretrain/).

  python -m snipjax.train --config configs/cpu_1d.py --workdir runs/pretrain_cpu_1d

Hardware: a 2-core CPU. The paper's data and architecture family, shrunk to two 2-layer encoders of width 64,
and three departures from the official recipe that a short CPU run needs (results/pretrain/ has the
ablation): AdamW at 2e-3 with a 5% warmup and cosine decay instead of Adam at 4e-5 with a 10k-step warmup
(whose learning rate is still near 1e-6 when a CPU run ends); the CLIP loss (L2-normalised latents, learned
temperature) instead of raw dot products at τ = 1; and masked pooling with symbols cut at 80 positions
(1-D expressions need at most about 65), which computes the same function 1.5x faster. Batch 64, 5,000 steps
(320k pairs, 0.5% of the paper's 60M).

What it should reach: held-out 256-way retrieval top-1 well above chance (1/256 ≈ 0.004) in both directions;
results/pretrain/README.md records what it reached.
"""

from configs.tiny import get_config as tiny_config


def get_config():
    config = tiny_config()
    config.loss.kind = "clip"
    config.model.pool_mask = True
    config.data.max_len = 80
    config.optim.kind = "adamw_cosine"
    config.optim.lr = 2e-3
    config.optim.warmup_steps = 250
    config.batch_size = 64
    config.total_steps = 5000
    config.log_every = 50
    config.eval_every = 250
    config.checkpoint_every = 500
    return config
