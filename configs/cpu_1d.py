"""The CPU recipe: a small 1-D SNIP pretrained in under an hour on a 2-core machine (results/pretrain/).

  python -m snipjax.train --config configs/cpu_1d.py --workdir runs/pretrain_cpu_1d

Hardware: a 2-core CPU, about 55 minutes. The Quick start model and recipe (configs/tiny.py: two 2-layer
encoders of width 64; points as value features, AdamW at 2e-3 with a 5% warmup and cosine decay, the CLIP loss,
masked pooling with symbols cut at 80 positions, each measured in results/pretrain/'s ablation) trained for
7,000 steps of batch 64 (448k pairs, 0.7% of the paper's 60M).

What it should reach: held-out 256-way retrieval top-1 well above chance (1/256 ≈ 0.004) in both directions;
results/pretrain/README.md records what it reached.
"""

from configs.tiny import get_config as tiny_config


def get_config():
    config = tiny_config()
    config.optim.warmup_steps = 350
    config.batch_size = 64
    config.total_steps = 7000
    config.log_every = 50
    config.eval_every = 250
    config.checkpoint_every = 500
    return config
