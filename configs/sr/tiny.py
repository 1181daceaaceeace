"""A small symbolic-regression decoder that trains on a laptop CPU in minutes (from scratch, or on a CPU encoder).

  python -m snipjax.tasks.sr.train --config configs/sr/tiny.py --workdir runs/sr_tiny

Hardware: any CPU. Expressions of up to 2 variables with raw y, 200 points; numeric encoder and decoder of 2
layers, width 64, a mapper to 16 memory vectors, tied output embeddings; batch 32, AdamW 1e-3 with cosine
decay, 600 steps. Without --config.pretrained the encoder is trained too (there is nothing to freeze); with a
pretrained encoder of the same Dmax (--config.pretrained=DIR) it stays frozen and decides the sizes.

What it should reach: teacher-forced token accuracy on held-out expressions well above the share of the most
frequent token; the decoding and the refit constants that turn this into formulas are later work.
"""

from snipjax.config import sr_config


def get_config():
    config = sr_config()
    config.data.max_dim = 2
    config.data.max_len = 80
    config.data.workers = 1
    config.model.update(d_model=64, n_layers=2, n_heads=4, d_ff=128, latent_dim=64, float_emb_dim=16,
                        max_positions=256, pool_mask=True)
    config.model.decoder.update(n_layers=2, n_heads=4, memory_length=16)
    config.train_encoder = True
    config.optim.kind = "adamw_cosine"
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 50
    config.batch_size = 32
    config.total_steps = 600
    config.log_every = 20
    config.eval_every = 200
    config.checkpoint_every = 200
    return config
