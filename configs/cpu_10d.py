"""The 10-D CPU recipe: a small SNIP over functions of up to 10 inputs, for the tasks that need Dmax > 1.

  python -m snipjax.train --config configs/cpu_10d.py --workdir runs/pretrain_cpu_10d

Hardware: a 2-core CPU, under half an hour (results/pretrain/). configs/cpu_1d.py at Dmax 10 with raw y, as the
official SNIP-10dmax: points read as value features (symlog, so raw outputs of any magnitude fit), the CLIP
loss, masked pooling with symbols cut at 120 positions (at Dmax 10, 99% of the sampled expressions take at most
about 100), and 8 features per value instead of 16, so that a point's 11 values make a 264-wide input.
2,500 steps of batch 64.

What it should reach: held-out 256-way retrieval far above chance; raw y keeps the functions' scales, which
makes Dmax 10 pairs easier to tell apart than min-max 1-D ones. results/pretrain/README.md records it.
"""

from configs.cpu_1d import get_config as cpu_1d_config


def get_config():
    config = cpu_1d_config()
    config.data.max_dim = 10
    config.data.normalize_y = False
    config.data.max_len = 120
    config.model.float_emb_dim = 8
    config.total_steps = 2500
    config.optim.warmup_steps = 125
    config.eval_every = 250
    config.checkpoint_every = 500
    return config
