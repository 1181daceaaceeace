"""The official symbolic-regression training (the SR release's run_train.sh), for one GPU.

  python -m snipjax.tasks.sr.train --config configs/sr/paper.py --workdir runs/sr_paper \
      --config.pretrained=runs/snip_10dmax      # after: python -m snipjax.convert --torch snip-10dmax.pth --out runs/snip_10dmax

SNIP-10dmax's numeric encoder frozen, a mapper to 200 memory vectors and a 16-layer decoder, next-token
cross-entropy on raw-y data. Hardware: one GPU (the official run: one 32 GB V100 class device, fp32). Batch 64, Adam 4e-5 with the
official inverse-square-root schedule (10k warmup steps), expressions of up to 10 variables with 200 points.
The official code starts the decoder from E2E's pretrained decoder, which snipjax does not ship; converting
`snip-e2e-sr.pth` and passing it as `--config.pretrained_sr` continues from the released SR model instead.

What it should reach (paper, SRBench, noise 0, with latent space optimization): test R² > 0.99 on 88.2% of
the 119 Feynman problems (mean complexity 31.6) and 92.9% of the 14 Strogatz problems; without LSO the
paper's appendix reports a solved share of about 0.68. SNIP's median time per Feynman problem: 72.6 s.

Fits (results/bench/compile.md, `python -m snipjax.compile --target ... [--step decode|refit]`): one
H100 (21.0 GiB of JAX's 59.3) and one TPU v5e chip (13.5 of 16 GiB); the decoding step and the refit fit both.
"""

from snipjax.config import sr_config


def get_config():
    config = sr_config()
    config.total_steps = 1_000_000  # the official run trains for days, 1000 steps per epoch
    config.log_every = 100
    config.eval_every = 10_000
    return config
