"""Speed benchmarks, one module each, printing one JSON object per line: `python -m snipjax.bench <name> ...`.

  data       sample generation: samples/s of the batch producer, per core        (snipjax.bench.data)
  train      the train step: samples/s, step and data ms, FLOPs, MFU, memory     (snipjax.bench.train)
  formulas   generated infix strings parse back to their token ids?              (snipjax.bench.formulas)
  constants  the batched constant refit against scipy's BFGS per candidate        (snipjax.bench.constants)
  decode     KV-cached decoding against recomputing the prefix                    (snipjax.bench.decode)
  lso        latent space optimization: seconds per problem, split by phase      (snipjax.bench.lso)

`python -m snipjax.bench <name> --help` lists a benchmark's flags.
"""

BENCHMARKS = ("data", "train", "formulas", "constants", "decode", "lso")
