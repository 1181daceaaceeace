"""A small 1-D SNIP that learns on a laptop CPU in minutes: the Quick start job.

  python -m snipjax.train --config configs/tiny.py --workdir /tmp/snip_tiny

Hardware: any CPU; about 3 minutes on 2 cores. The paper's data and architecture family, shrunk to two 2-layer
encoders of width 64, with the CPU recipe's four departures from the official recipe (results/pretrain/ has
the ablation): points read as value features (symlog(v) and its sines and cosines) instead of float-token
embeddings, which a short run cannot learn for 10,000 mantissas; AdamW at 2e-3 with a 5% warmup and cosine
decay instead of Adam at 4e-5 with a 10k-step warmup (whose learning rate is still near 1e-6 when a CPU run
ends); the CLIP loss (L2-normalised latents, learned temperature) instead of raw dot products at τ = 1; and
masked pooling with symbols cut at 80 positions (1-D expressions need at most about 65). Batch 32, 1,000
steps.

What it should reach: on the held-out pairs the 256-way loss falls from ln 256 ≈ 5.55 to about 4.5 and top-1
retrieval reaches about ten times chance in both directions (0.047 numeric→symbolic and 0.039 back on a 2-core
machine; chance 1/256 ≈ 0.004, and one evaluation resolves top-1 to about ±0.012), where the official recipe's
choices (at lr 1e-3) end at 0.020 / 0.008 in the same time. configs/cpu_1d.py trains the same model on 14
times as many pairs.
"""

from snipjax.config import default_config


def get_config():
    config = default_config()
    config.data.workers = 1  # one producer process: data generation overlaps the step on a 2-core machine
    config.data.max_len = 80
    config.model.d_model = 64
    config.model.n_layers = 2
    config.model.n_heads = 4
    config.model.d_ff = 128
    config.model.latent_dim = 64
    config.model.float_emb_dim = 16
    config.model.max_positions = 256
    config.model.point_input = "values"
    config.model.pool_mask = True
    config.loss.kind = "clip"
    config.optim.kind = "adamw_cosine"
    config.optim.lr = 2e-3
    config.optim.warmup_steps = 50
    config.batch_size = 32
    config.total_steps = 1000
    config.log_every = 20
    config.eval_every = 200
    config.checkpoint_every = 500
    return config
