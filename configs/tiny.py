"""A small 1-D SNIP that learns on a laptop CPU in minutes.

  python -m snipjax.train --config configs/tiny.py --workdir /tmp/snip_tiny

Hardware: any CPU; about 4 minutes on 2 cores. Same data, loss and optimizer as the paper's 1-D model,
shrunk: two 2-layer encoders of width 64, batch 32, 600 steps with a short warmup and a higher learning rate.
It learns slowly but visibly: the 32-way train loss falls from ln 32 ≈ 3.47 to about 3.1, and on the held-out
pairs the 256-way loss from ln 256 ≈ 5.55 to about 5.1 and top-5 retrieval rises to about 3x chance (chance:
top-1 1/256, top-5 5/256). The float tokens' 10,000 mantissa embeddings are what takes long to learn.
"""

from snipjax.config import default_config


def get_config():
    config = default_config()
    config.data.workers = 1  # one producer process: data generation overlaps the step on a 2-core machine
    config.model.d_model = 64
    config.model.n_layers = 2
    config.model.n_heads = 4
    config.model.d_ff = 128
    config.model.latent_dim = 64
    config.model.float_emb_dim = 16
    config.model.max_positions = 256
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 50
    config.batch_size = 32
    config.total_steps = 600
    config.log_every = 20
    config.eval_every = 200
    config.checkpoint_every = 200
    return config
