"""The first CPU result: a small 1-D SNIP pretrained for under 30 minutes on a 2-core machine.

  python results/pretrain/reproduce.py        # runs: python -m snipjax.train --config configs/cpu_1d.py ...

Hardware: a 2-core CPU (the project's CI machine). The paper's data, loss (InfoNCE on raw dot products, τ=1)
and architecture family, shrunk to two 2-layer encoders of width 64, with batch 64 for 1,800 steps (115k pairs,
0.2% of the paper's 60M) and a cosine schedule that keeps the learning rate high in such a short run.

What it should reach: held-out 256-way retrieval top-1 well above chance (1/256 ≈ 0.004) in both directions;
results/pretrain/ records what it did reach.
"""

from configs.tiny import get_config as tiny_config


def get_config():
    config = tiny_config()
    config.optim.kind = "adamw_cosine"
    config.optim.lr = 2e-3
    config.optim.warmup_steps = 200
    config.batch_size = 64
    config.total_steps = 1800
    config.log_every = 50
    config.eval_every = 200
    config.checkpoint_every = 400
    return config
