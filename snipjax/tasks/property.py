"""Cross-modal property prediction (SNIP paper Table 1): an MLP head on one encoder's latent.

  python -m snipjax.tasks.property --config configs/property/cpu.py --workdir DIR \
      --config.property=ncr --config.mode=frozen --config.pretrained=runs/pretrain_cpu_1d

Numeric properties of a 1-D function (ncr, upward, yavg, oscillation) are predicted from the *symbolic*
encoder's latent of its formula, as in the paper; properties of the formula (n_ops, depth, periodic,
exponential, logarithmic, dim) from the *numeric* encoder's latent of its points, the direction the official
code cannot run. Modes: `supervised` (the encoder trained from scratch with the head), `frozen` (a pretrained
encoder kept bit-identical: it is not in the optimizer), `finetuned` (a pretrained encoder trained on).
`pretrained` is any path `snipjax.load` reads; it also decides the architecture in supervised mode, so the
three modes compare the same network. The head is Linear(latent→128) → ReLU → Linear(128→1), trained with MSE
(BCE for the 0/1 properties). Training and test expressions come from disjoint seed streams; the test set is
the same for every mode. Runs on the shared loop (`snipjax.loop`): checkpoints, exact resume, metrics.
"""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score

from snipjax import checkpoint, loop, models, parallel
from snipjax.data.pipeline import EpochBatches, generate
from snipjax.data.properties import EXPRESSION_PROPERTY_NAMES
from snipjax.models.transformer import dense
from snipjax.task import Task
from snipjax.task_data import example_inputs, host_rows, symbol_trim

# Numeric properties (symbolic encoder reads the formula) by config name → data label.
NUMERIC_PROPERTIES = {"ncr": "ncr", "upward": "upwardness", "yavg": "yavg", "oscillation": "oscillation"}
# Properties of the formula (numeric encoder reads the points); the 0/1 ones are classified.
EXPRESSION_PROPERTIES = {name: name for name in EXPRESSION_PROPERTY_NAMES}
BINARY_PROPERTIES = ("periodic", "exponential", "logarithmic")
MODES = ("supervised", "frozen", "finetuned")
TRAIN_SEED_OFFSET, TEST_SEED_OFFSET = 2_000_003, 3_000_017  # disjoint from pretraining's streams and each other
TOLERANCES = (0.01, 0.1, 1.0)  # the official accuracy tolerances, on min-max scaled labels


def direction(prop: str) -> str:
    """'symbolic' (numeric properties, read from the formula) or 'numeric' (formula properties, from points)."""
    if prop in NUMERIC_PROPERTIES:
        return "symbolic"
    if prop in EXPRESSION_PROPERTIES:
        return "numeric"
    raise ValueError(f"config.property={prop!r} is unknown: numeric properties {sorted(NUMERIC_PROPERTIES)} "
                     f"(predicted from the symbolic encoder) or formula properties {sorted(EXPRESSION_PROPERTIES)} "
                     "(from the numeric encoder)")


def encoder_inputs(prop: str) -> tuple[str, ...]:
    return ("symbols", "symbol_len") if direction(prop) == "symbolic" else ("points",)


def label_name(prop: str) -> str:
    direction(prop)
    return {**NUMERIC_PROPERTIES, **EXPRESSION_PROPERTIES}[prop]


class PropertyPredictor(nn.Module):
    """One SNIP encoder, then the head: Dense(latent→hidden) → ReLU → Dense(hidden→1); → [B] float32."""

    encoder: nn.Module
    hidden: int
    latent_dim: int

    @nn.compact
    def __call__(self, *inputs):
        z = self.encoder(*inputs).astype(jnp.float32)
        h = nn.relu(dense(self.hidden, self.latent_dim, jnp.float32, "head_hidden")(z))
        return dense(1, self.hidden, jnp.float32, "head_out")(h)[..., 0]


def encoder_config(config) -> tuple[ml_collections.ConfigDict, dict | None]:
    """(the config whose model and data.max_dim describe the encoder, pretrained encoder params or None)."""
    mode, path, prop = config.mode, config.pretrained, config.property
    if mode not in MODES:
        raise ValueError(f"config.mode={mode!r} is unknown: one of {MODES}")
    tower = f"{direction(prop)}_encoder"
    if not path:
        if mode != "supervised":
            raise ValueError(f"config.mode={mode!r} starts from a pretrained encoder: set --config.pretrained to a "
                             "pretraining workdir, an export dir or a converted official checkpoint")
        return config, None
    pretrained_config, params = checkpoint.load_params(path)
    for key, ours in (("data.max_dim", config.data.max_dim), ("model.latent_dim", config.model.latent_dim)):
        section, name = key.split(".")
        theirs = pretrained_config[section][name]
        if theirs != ours:
            raise ValueError(f"{path} holds a model with {key}={theirs}, but this config has {key}={ours}: use "
                             f"--config.{key}={theirs}, or a checkpoint trained for {key}={ours}")
    if tower not in params:
        raise ValueError(f"{path} has no {tower} (it holds {sorted(params)}): property {prop!r} needs it")
    return pretrained_config, (params[tower] if mode != "supervised" else None)


def data_config(config, encoder_cfg) -> ml_collections.ConfigDict:
    """The samples of this task: the encoder's data (Dmax, points, y normalization, sequence length) with
    this config's label switch and workers, plus the labels of `config.property`."""
    data = ml_collections.ConfigDict(encoder_cfg.data.to_dict())
    data.property_y = config.data.property_y
    data.workers = config.data.workers
    data.with_properties = direction(config.property) == "symbolic"
    data.with_expression_properties = direction(config.property) == "numeric"
    if data.with_properties and data.max_dim != 1:
        raise ValueError(f"numeric property {config.property!r} is defined for 1-D functions: use a Dmax=1 "
                         f"encoder (this one has data.max_dim={data.max_dim})")
    return data


_SAMPLES: dict[str, dict[str, np.ndarray]] = {}  # per data config and seed: the longest prefix made so far


def samples(data, seed: int, count: int) -> dict[str, np.ndarray]:
    """Samples 0..count-1 of a seed stream. Samples are pure functions of their index, so runs in one
    process (every mode, every training-set size of a table) share one generation and slice it."""
    settings = {k: v for k, v in data.to_dict().items() if k != "workers"}
    key = json.dumps({"data": settings, "seed": seed}, sort_keys=True)
    if key not in _SAMPLES or len(_SAMPLES[key]["index"]) < count:
        _SAMPLES[key] = generate(data, seed, count, data.get("workers", 0))
    return {k: v[:count] for k, v in _SAMPLES[key].items()}


def regression_metrics(pred: np.ndarray, truth: np.ndarray, train_mean: float) -> dict[str, float]:
    """As the official evaluation prints them: R², MSE, NMSE = MSE / Var(truth); accuracy within each tolerance
    after min-max scaling truth and prediction by the truth's range; the same for the chance predictor (the
    training labels' mean)."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    variance = np.var(truth)
    metrics = {}
    for prefix, guess in (("", pred), ("chance_", np.full_like(truth, train_mean))):
        mse = mean_squared_error(truth, guess)
        metrics[f"{prefix}r2"] = r2_score(truth, guess) if variance > 0 else float("nan")
        metrics[f"{prefix}mse"] = mse
        metrics[f"{prefix}nmse"] = mse / (variance + 1e-12)
        span = truth.max() - truth.min()
        scaled_truth, scaled_guess = (truth - truth.min()) / span, (guess - truth.min()) / span
        for tol in TOLERANCES:
            metrics[f"{prefix}acc_{tol:g}"] = np.mean(np.abs(scaled_guess - scaled_truth) <= tol)
    return metrics


def classification_metrics(logits: np.ndarray, truth: np.ndarray, train_mean: float) -> dict[str, float]:
    """Accuracy and binary cross-entropy, and the same for the chance predictor (the training positive rate)."""
    truth = np.asarray(truth, np.float64)
    prob = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    metrics = {}
    for prefix, p in (("", prob), ("chance_", np.full_like(truth, train_mean))):
        p = np.clip(p, 1e-7, 1 - 1e-7)
        metrics[f"{prefix}accuracy"] = accuracy_score(truth > 0.5, p > 0.5)
        metrics[f"{prefix}bce"] = log_loss(truth, p, labels=[0.0, 1.0])
    return metrics


def property_task(config, mesh: jax.sharding.Mesh | None) -> Task:
    """The predictor of `config.property` in `config.mode`, with its training and test sets, for the loop; its
    layers computed for `mesh`'s devices (None: one device)."""
    encoder_cfg, pretrained = encoder_config(config)
    prop, label = config.property, label_name(config.property)
    data = data_config(config, encoder_cfg)
    snip = models.make_snip(encoder_cfg, parallel.kernels_for(config, mesh))
    encoder = snip.symbolic_encoder if direction(prop) == "symbolic" else snip.numeric_encoder
    model = PropertyPredictor(encoder.clone(parent=None), config.head_hidden, encoder_cfg.model.latent_dim)
    fields = encoder_inputs(prop)
    binary = prop in BINARY_PROPERTIES
    frozen_mode = config.mode == "frozen"

    train_set = samples(data, config.seed + TRAIN_SEED_OFFSET, config.n_train)
    test_data = ml_collections.ConfigDict(data.to_dict())
    test_data.min_binary_ops_per_dim = config.test_min_binary_ops_per_dim
    test_set = samples(test_data, config.seed + TEST_SEED_OFFSET, config.n_test)
    train_mean = float(np.mean(train_set[label]))
    keep = fields + (label,)
    train_set = {k: train_set[k] for k in keep}

    shapes = example_inputs(encoder_cfg, config.batch_size)
    example_batch = {k: shapes[k] for k in fields}
    example_batch[label] = jax.ShapeDtypeStruct((config.batch_size,), jnp.float32)

    def init(key):
        inputs = [jnp.zeros((1, *shapes[k].shape[1:]), shapes[k].dtype) for k in fields]
        params = model.init(key, *inputs)["params"]
        if pretrained is not None:
            params = {**params, "encoder": jax.tree.map(jnp.asarray, pretrained)}
        if frozen_mode:
            return {k: v for k, v in params.items() if k != "encoder"}, {"encoder": params["encoder"]}
        return params, {}

    def predict(params, frozen, batch):
        return model.apply({"params": {**params, **frozen}}, *(batch[k] for k in fields))

    def loss(params, frozen, batch):
        pred, truth = predict(params, frozen, batch), batch[label]
        if binary:
            value = jnp.mean(jnp.logaddexp(0.0, pred) - truth * pred)  # BCE with logits
            return value, {"loss": value, "accuracy": jnp.mean((pred > 0) == (truth > 0.5))}
        value = jnp.mean((pred - truth) ** 2)
        return value, {"loss": value}

    def summarize(outputs) -> dict[str, float]:
        pred = np.concatenate([o["prediction"] for o in outputs])
        truth = np.concatenate([o["truth"] for o in outputs])
        summarize_fn = classification_metrics if binary else regression_metrics
        return summarize_fn(pred, truth, train_mean)

    eval_batches = [{k: test_set[k][host_rows(config.eval_batch_size, start)] for k in keep}
                    for start in range(0, config.n_test, config.eval_batch_size)]

    return Task(
        init=init,
        loss=loss,
        example_batch=example_batch,
        batches=lambda start_step: EpochBatches(train_set, config.batch_size, config.seed, jax.process_index(),
                                                jax.process_count(), start_step),
        eval_batches=eval_batches,
        evaluate=lambda params, frozen, batch: {"prediction": predict(params, frozen, batch),
                                                "truth": batch[label]},
        summarize=summarize,
        progress=(("accuracy", "accuracy"),) if binary else (),
        headline=lambda e: (f"test accuracy {e['accuracy']:.3f} (chance {e['chance_accuracy']:.3f})" if binary else
                            f"test R² {e['r2']:.4f}, NMSE {e['nmse']:.4f} (chance R² {e['chance_r2']:.4f})"),
        resume_keys=("seed", "batch_size", "data", "property", "mode", "pretrained", "n_train", "n_test",
                     "head_hidden", "optim.kind"),
        trim=symbol_trim(config, data.max_len),
    )


def check_config(config) -> None:
    if config.n_test % config.eval_batch_size:
        raise ValueError(f"config.n_test={config.n_test} must be a multiple of config.eval_batch_size="
                         f"{config.eval_batch_size}")


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
    """Train the predictor to `config.total_steps` (resuming from `workdir`); returns the test-set metrics."""
    check_config(config)
    return loop.run(property_task, config, workdir)


if __name__ == "__main__":
    loop.cli(train_and_evaluate)
