"""SNIP-10dmax, the paper's pretraining for symbolic regression: up to 10 input variables, raw y.

  python -m snipjax.train --config configs/snip_10d_paper.py --workdir runs/snip_10d_paper

Hardware: one GPU, as the official run (hardware and training time not published); see
configs/tpu_pod_10d.py for a pod slice. fp32 like the official run.

Recipe: as configs/snip_1d_paper.py (8+8 layers of d 512, batch 256, Adam 4e-5 with 10k warmup and
inverse-sqrt decay, clipping 0.5, ~61M pairs) with `--max_input_dimension 10`: D ~ U{1..10}, y not
normalized, numeric input 3·11 float tokens per point, so the vocabulary and the embedder differ from the
1-D model's.

What it should reach: no pretraining metric is published. Its downstream target is symbolic regression
with the SNIP encoder + E2E decoder + latent optimization (SRBench, recomputed from the released results:
Strogatz 13/14 and Feynman 105/119 at R² > 0.99, from the released result files). The released SNIP-10dmax converted with
snipjax.convert is the reference for the held-out retrieval accuracy logged here.

Fits (results/bench/compile.md, `python -m snipjax.compile --target ...`): one H100 (46.9 GiB per chip of
JAX's 59.3); not one TPU v5e chip (its temporaries alone need 21.8 GiB of 15.8).
"""

from snipjax.config import default_config


def get_config():
    config = default_config()
    config.data.max_dim = 10
    config.data.normalize_y = False
    return config
