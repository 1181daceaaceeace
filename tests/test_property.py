"""Property prediction: labels, splits, metrics, the three modes on the shared loop, exact resume, errors."""

import glob
import importlib.util
import os

import jax
import numpy as np
import pytest

from snipjax import checkpoint
from snipjax.config import property_config
from snipjax.data import properties as properties_lib
from snipjax.data.pipeline import EpochBatches, generate
from snipjax.data.points import normalize_outputs
from snipjax.data.samples import DataSpec, generate_sample
from snipjax.tasks import pretrain
from snipjax.tasks import property as prop_task
from training_helpers import read_metrics, small_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny pretraining workdir (2 steps): what frozen and finetuned modes start from."""
    workdir = tmp_path_factory.mktemp("pretrained")
    pretrain.train_and_evaluate(small_config(total_steps=2, eval_every=2), str(workdir))
    return str(workdir)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """An export dir of freshly initialised encoders: all that a config's checks before training read."""
    config = small_config()
    params, _ = pretrain.pretraining_task(config, None).init(jax.random.key(0))
    directory = tmp_path_factory.mktemp("untrained")
    checkpoint.export_params(str(directory), config, params)
    return str(directory)


def tiny_property_config(pretrained_dir, **overrides):
    config = property_config()
    config.model = small_config().model
    config.update(pretrained=pretrained_dir, n_train=48, n_test=32, eval_batch_size=16, batch_size=16,
                  total_steps=4, log_every=1, eval_every=2, checkpoint_every=2, keep_checkpoints=10)
    config.optim.update(lr=1e-3, warmup_steps=2)
    for key, value in overrides.items():
        config.update_from_flattened_dict({key: value})
    return config


def test_official_labels_come_from_raw_y_and_the_switch_from_normalized_y():
    raw = DataSpec(max_dim=1, with_properties=True)
    normalized = DataSpec(max_dim=1, with_properties=True, property_y="normalized")
    for index in range(20):
        sample, other = generate_sample(raw, 7, index), generate_sample(normalized, 7, index)
        np.testing.assert_array_equal(sample.y, other.y)  # the model input is min-max y either way
        rng = np.random.default_rng(0)  # NCR's triplets: not compared here
        raw_y = generate_sample(DataSpec(max_dim=1, normalize_y=False), 7, index).y
        np.testing.assert_array_equal(normalize_outputs(raw_y), sample.y)
        direct = properties_lib.properties(sample.x, raw_y, rng)
        assert sample.properties["upwardness"] == direct["upwardness"]
        assert sample.properties["oscillation"] == direct["oscillation"]
        assert other.properties["upwardness"] == properties_lib.upwardness(
            sample.y[np.argsort(sample.x[:, 0], kind="stable")])
    with pytest.raises(ValueError, match="property_y"):
        DataSpec(property_y="scaled")


def test_expression_properties_count_operators_depth_and_families():
    from snipjax.data.expressions import Expression

    e = Expression(("add", 1.5, "mul", "exp", "x_0", "sin", "x_1"))
    assert properties_lib.expression_properties(e) == {
        "n_ops": 4.0, "depth": 4.0, "dim": 2.0, "periodic": 1.0, "exponential": 1.0, "logarithmic": 0.0}
    assert properties_lib.tree_depth(("x_0",)) == 1


def test_epoch_batches_cover_each_epoch_once_and_hosts_split_the_batch():
    data = {"row": np.arange(10)}
    source = EpochBatches(data, global_batch_size=4, seed=3)
    rows = np.concatenate([source.next()[1]["row"] for _ in range(5)])
    assert sorted(rows[:10]) == list(range(10)) and sorted(rows[10:]) == list(range(10))
    assert not np.array_equal(rows[:10], rows[10:])  # a new order every epoch
    resumed = EpochBatches(data, 4, seed=3, start_step=3)
    np.testing.assert_array_equal(resumed.next()[1]["row"], rows[12:16])
    hosts = [EpochBatches(data, 4, seed=3, process_index=p, process_count=2, start_step=1) for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([h.next()[1]["row"] for h in hosts]), rows[4:8])


def test_train_and_test_expressions_are_disjoint_streams():
    spec = DataSpec(max_dim=1, with_properties=True)
    train_set = generate(spec, prop_task.TRAIN_SEED_OFFSET, 200)
    test_set = generate(spec, prop_task.TEST_SEED_OFFSET, 100)

    def as_rows(batch):
        return {tuple(r) for r in batch["symbols"]}

    assert len(as_rows(train_set)) > 190 and not as_rows(train_set) & as_rows(test_set)


def test_regression_metrics_against_hand_computed_values():
    truth = np.array([0.0, 1.0, 2.0, 3.0])
    pred = np.array([0.0, 1.0, 2.5, 2.0])
    m = prop_task.regression_metrics(pred, truth, train_mean=1.0)
    assert m["mse"] == pytest.approx((0.25 + 1.0) / 4)
    assert m["nmse"] == pytest.approx(0.3125 / 1.25)
    assert m["r2"] == pytest.approx(1 - 0.3125 / 1.25)
    # scaled by the truth's range (3): errors 0, 0, 1/6, 1/3
    assert (m["acc_0.01"], m["acc_0.1"], m["acc_1"]) == (0.5, 0.5, 1.0)
    assert m["chance_mse"] == pytest.approx((1 + 0 + 1 + 4) / 4)
    assert m["chance_r2"] == pytest.approx(1 - 1.5 / 1.25)


def test_classification_metrics_against_hand_computed_values():
    m = prop_task.classification_metrics(np.array([3.0, -3.0, 1.0, -1.0]), np.array([1.0, 0.0, 0.0, 0.0]), 0.25)
    assert m["accuracy"] == 0.75 and m["chance_accuracy"] == 0.75
    assert m["chance_bce"] == pytest.approx(-(np.log(0.25) + 3 * np.log(0.75)) / 4)


def test_library_metrics_give_the_numbers_of_the_official_formulas():
    """sklearn computes R², MSE, accuracy and BCE; on random labels they equal the formulas written out."""
    rng = np.random.default_rng(0)
    truth, pred = rng.normal(size=200), rng.normal(size=200)
    m = prop_task.regression_metrics(pred, truth, train_mean=0.1)
    mse, variance = np.mean((truth - pred) ** 2), np.mean((truth - truth.mean()) ** 2)
    assert m["mse"] == pytest.approx(mse, rel=1e-12) and m["r2"] == pytest.approx(1 - mse / variance, rel=1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):  # constant truth: no R², no range to scale by
        assert np.isnan(prop_task.regression_metrics(pred[:5], np.ones(5), 1.0)["r2"])
    labels, logits = (rng.random(200) > 0.3).astype(float), rng.normal(size=200) * 4
    for truth in (labels, np.ones(200)):  # one class only included
        m = prop_task.classification_metrics(logits, truth, train_mean=0.7)
        p = np.clip(1 / (1 + np.exp(-logits)), 1e-7, 1 - 1e-7)
        assert m["accuracy"] == np.mean((p > 0.5) == (truth > 0.5))
        assert m["bce"] == pytest.approx(-np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p)), rel=1e-12)


def encoder_params(workdir):
    return checkpoint.load_params(workdir)[1]


@pytest.mark.slow
def test_frozen_mode_leaves_the_encoder_bit_identical_and_the_optimizer_never_sees_it(pretrained, tmp_path):
    config = tiny_property_config(pretrained, mode="frozen")
    metrics = prop_task.train_and_evaluate(config, str(tmp_path))
    assert {"r2", "nmse", "acc_0.1", "chance_r2"} <= metrics.keys()
    step = max(int(d) for d in os.listdir(tmp_path / "checkpoints"))
    state = checkpoint._restore_as_numpy(tmp_path / "checkpoints" / str(step) / checkpoint.STATE, "params")
    assert "encoder" not in state  # trainable params: the head alone
    assert "encoder" in checkpoint.load_params(str(tmp_path))[1]  # the workdir loads whole
    frozen = checkpoint._restore_as_numpy(tmp_path / "checkpoints" / str(step) / checkpoint.STATE, "frozen")
    jax.tree.map(np.testing.assert_array_equal, frozen["encoder"], encoder_params(pretrained)["symbolic_encoder"])
    opt_state = checkpoint._restore_as_numpy(tmp_path / "checkpoints" / str(step) / checkpoint.STATE, "opt_state")
    sizes = sum(np.size(x) for x in jax.tree.leaves(opt_state))
    head = sum(np.size(x) for x in jax.tree.leaves(state))
    assert sizes <= 2 * head + 8  # Adam's two moments of the head (and counters), nothing of the encoder


@pytest.mark.slow
@pytest.mark.parametrize("mode, prop", [("supervised", "upward"), ("finetuned", "periodic")])
def test_supervised_and_finetuned_train_everything(pretrained, tmp_path, mode, prop):
    config = tiny_property_config(pretrained, mode=mode, property=prop)
    metrics = prop_task.train_and_evaluate(config, str(tmp_path))
    params = checkpoint.load_params(str(tmp_path))[1]
    tower = params["encoder"]
    start = encoder_params(pretrained)["symbolic_encoder" if prop == "upward" else "numeric_encoder"]
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b), tower, start))
    assert any(changed)
    assert ("accuracy" in metrics) == (prop == "periodic")
    assert sorted(read_metrics(tmp_path, "eval")) == [2, 4]


@pytest.mark.slow
def test_property_run_resumes_exactly(pretrained, tmp_path):
    config = tiny_property_config(pretrained, mode="finetuned", checkpoint_every=2)
    prop_task.train_and_evaluate(tiny_property_config(pretrained, mode="finetuned", total_steps=2),
                                 str(tmp_path / "resumed"))
    prop_task.train_and_evaluate(config, str(tmp_path / "resumed"))
    prop_task.train_and_evaluate(config, str(tmp_path / "straight"))
    assert read_metrics(tmp_path / "resumed") == read_metrics(tmp_path / "straight")
    jax.tree.map(np.testing.assert_array_equal, checkpoint.load_params(str(tmp_path / "resumed"))[1],
                 checkpoint.load_params(str(tmp_path / "straight"))[1])


@pytest.mark.parametrize("overrides, message", [
    ({"property": "curvature"}, "property='curvature' is unknown"),
    ({"mode": "thawed"}, "mode='thawed' is unknown"),
    ({"mode": "frozen", "pretrained": ""}, "starts from a pretrained encoder"),
    ({"pretrained": "/nonexistent/run"}, "config.json not found"),
    ({"data.max_dim": 10}, "data.max_dim=1, but this config has data.max_dim=10"),
    ({"model.latent_dim": 512}, "model.latent_dim=32, but this config has model.latent_dim=512"),
])
def test_bad_configs_are_refused_with_a_clear_error(untrained, overrides, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(")):
        prop_task.property_task(tiny_property_config(untrained, **overrides), None)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROPERTY_CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "property", "*.py")))


@pytest.mark.parametrize("path", PROPERTY_CONFIGS, ids=os.path.basename)
def test_property_configs_build_and_start_with_their_command(path, monkeypatch):
    monkeypatch.syspath_prepend(REPO)
    spec = importlib.util.spec_from_file_location("property_config_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    assert config.mode in prop_task.MODES and prop_task.direction(config.property) == "symbolic"
    assert config.n_test % config.eval_batch_size == 0
    command = next(line.strip() for line in module.__doc__.splitlines()[1:] if line.strip())
    assert "snipjax.tasks.property" in command and os.path.relpath(path, REPO) in command


def test_the_paper_config_runs_unchanged_on_a_converted_official_checkpoint(tmp_path, monkeypatch):
    from snipjax import convert
    from test_convert import D, random_state_dict, training_params

    config, params = convert.convert_state_dicts(random_state_dict("state_dict_dmax1.tsv"), training_params(1))
    checkpoint.export_params(str(tmp_path / "snip-1d"), config, params)
    monkeypatch.syspath_prepend(REPO)
    spec = importlib.util.spec_from_file_location("paper_property", os.path.join(REPO, "configs/property/paper.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paper = module.get_config()
    paper.update(pretrained=str(tmp_path / "snip-1d"), n_train=32, n_test=16, eval_batch_size=16, total_steps=2,
                 eval_every=2, log_every=1, checkpoint_every=2)
    paper.model.latent_dim = D  # the test checkpoint is shrunk; the released one has 512, as the config says
    metrics = prop_task.train_and_evaluate(paper, str(tmp_path / "run"))
    assert np.isfinite(metrics["r2"]) and 0.0 <= metrics["acc_0.1"] <= 1.0


@pytest.mark.slow
def test_input_dimension_is_predicted_from_the_points_of_a_multi_dimensional_model(tmp_path):
    config = tiny_property_config("", mode="supervised", property="dim", total_steps=2)
    config.data.update(max_dim=3, normalize_y=False, n_points=50, max_len=64)
    metrics = prop_task.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(metrics["r2"]) and "accuracy" not in metrics
    with pytest.raises(ValueError, match="defined for 1-D functions"):
        prop_task.property_task(tiny_property_config("", mode="supervised", property="ncr", **{"data.max_dim": 3}),
                                None)
