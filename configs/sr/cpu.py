"""The CPU symbolic-regression model of results/sr/: a decoder on this project's CPU-pretrained encoder.

  python -m snipjax.tasks.sr.train --config configs/sr/cpu.py --workdir runs/sr_cpu \
      --config.pretrained=runs/pretrain_cpu_1d_tokens

Hardware: a 2-core CPU. The encoder (2 layers, width 64; configs/cpu_1d.py with points as float tokens, the
recipe before value features: `python results/pretrain/reproduce.py final cpu_1d_tokens`; any encoder of
configs/cpu_1d.py loads the same way) gives the width; a mapper to 32
memory vectors and a 4-layer decoder with tied output embeddings read it. Expressions of up to 2 variables:
the 1-D encoder's point embedder is widened to x_1 (the new input starts with no effect). The encoder is
fine-tuned with the decoder (`train_encoder`): it was pretrained on 1-D, min-max normalised y, and SR reads
2-D points with raw y. Batch 64, AdamW 1e-3 with cosine decay, 4,000 steps (256k expressions; the official
SR model sees tens of millions): 1 h 46 min on a 2-core machine (shared with test runs).

What it should reach: results/sr/README.md records the held-out token accuracy and the share of held-out
expressions and the 1–2 variable Feynman problems decoded to R² > 0.99 after refitting the constants.
"""

from configs.sr.tiny import get_config as tiny_config


def get_config():
    config = tiny_config()
    config.model.decoder.update(n_layers=4, memory_length=32)
    config.optim.warmup_steps = 300
    config.batch_size = 64
    config.total_steps = 4000
    config.log_every = 50
    config.eval_every = 500
    config.eval_size = 512
    config.checkpoint_every = 500
    return config
