"""snipjax: SNIP (Symbolic-Numeric Integrated Pre-training) in JAX/Flax.

The functional API for research code:

    config, params = snipjax.load(path)
    z_numeric = snipjax.encode_numeric(params, X, y, config=config)
    z_symbolic = snipjax.encode_symbolic(params, ["cos(x)**2*exp(-x)"], config=config)
    model = snipjax.SNIPRegressor(checkpoint=path).fit(X, y)    # symbolic regression (an SR checkpoint)

Attributes load lazily, so `import snipjax.data` (the numpy data layer, used by worker processes) never
imports jax.
"""

import importlib

__version__ = "0.1.0"

_API = {name: "snipjax.api" for name in ("load", "encode_numeric", "encode_symbolic", "encode_numeric_tokens",
                                          "encode_symbolic_tokens")}
_API["SNIPRegressor"] = "snipjax.tasks.sr.regressor"
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'snipjax' has no attribute {name!r}")
