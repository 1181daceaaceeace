"""SNIP-1d-normalized, the paper's 1-D pretraining, as the official code runs it.

  python -m snipjax.train --config configs/snip_1d_paper.py --workdir runs/snip_1d_paper

Hardware: one GPU, as the official run (the official scripts pin one CUDA device; the paper's hardware and
training time are not published). Any mesh works: the batch is global. fp32 like the official run; add
--config.model.dtype=bfloat16 for speed (configs/gpu_1d.py).

Recipe (paper and official code: run_pretrain.sh, parsers.py): numeric and symbolic encoders of 8
post-LN layers, d 512, 16 heads, FFN 2048, latent 512; expressions of one variable with 200 points, y min-max
normalized; InfoNCE on raw dot products with τ = 1; batch 256; Adam, 10k warmup steps from 1e-7 to 4e-5 then
inverse-sqrt decay, gradient clipping 0.5; 240k steps ≈ 61M pairs (the reviews' "60 million examples").

What it should reach: the paper publishes no pretraining metric. Its downstream numbers (property prediction
with this encoder, paper Table 1) are the target, and the released checkpoint converted with snipjax.convert
is the reference for the held-out 256-way retrieval accuracy logged here.

Fits (results/bench/compile.md, `python -m snipjax.compile --target ...`): one H100 (45.9 GiB per chip of
JAX's 59.3); not one TPU v5e chip (its temporaries alone need 22.4 GiB of 15.8).
"""

from snipjax.config import default_config


def get_config():
    return default_config()
