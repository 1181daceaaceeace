"""Decoder training for symbolic regression on the shared loop: targets, frozen encoder, exact resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snipjax import checkpoint
from snipjax.config import sr_config
from snipjax.tasks import pretrain
from snipjax.tasks.sr import train as sr_train
from training_helpers import read_metrics, small_config


def tiny_sr_config(**overrides):
    config = sr_config()
    base = small_config(**{"data.max_dim": 2, "data.normalize_y": False})
    config.data = base.data
    decoder = config.model.decoder
    config.model = base.model
    config.model.decoder = decoder
    config.model.decoder.update(n_layers=1, n_heads=2, memory_length=4)
    config.update(batch_size=16, total_steps=4, log_every=1, eval_every=2, eval_size=16, checkpoint_every=2,
                  keep_checkpoints=10)
    config.optim.update(kind="adamw_cosine", lr=1e-3, warmup_steps=1)
    for key, value in overrides.items():
        config.update_from_flattened_dict({key: value})
    return config


def test_targets_are_the_next_tokens_after_the_opening_eos():
    symbols = jnp.array([[7, 1, 2, 7, 0, 0], [7, 3, 7, 0, 0, 0]])
    inputs, targets, mask = sr_train.sequence_targets(symbols, jnp.array([4, 3]))
    np.testing.assert_array_equal(inputs, symbols[:, :-1])
    np.testing.assert_array_equal(targets, symbols[:, 1:])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("encoder")
    pretrain.train_and_evaluate(small_config(**{"data.max_dim": 2, "data.normalize_y": False, "total_steps": 2,
                                             "eval_every": 2}), str(workdir))
    return str(workdir)


@pytest.mark.slow
def test_decoder_trains_on_a_frozen_pretrained_encoder_and_resumes_exactly(encoder_dir, tmp_path):
    config = tiny_sr_config(pretrained=encoder_dir)
    sr_train.train_and_evaluate(tiny_sr_config(pretrained=encoder_dir, total_steps=2), str(tmp_path / "resumed"))
    evaluation = sr_train.train_and_evaluate(config, str(tmp_path / "resumed"))
    assert sr_train.train_and_evaluate(config, str(tmp_path / "straight")) == evaluation
    assert read_metrics(tmp_path / "resumed") == read_metrics(tmp_path / "straight")
    assert {"loss", "token_accuracy", "sequence_accuracy"} <= evaluation.keys()
    trained = checkpoint._restore_as_numpy(tmp_path / "straight" / "checkpoints" / "4" / checkpoint.STATE, "params")
    assert set(trained) == {"mapper", "decoder"}  # the optimizer's parameters: the encoder is frozen
    assert set(checkpoint.load_params(str(tmp_path / "straight"))[1]) == {"numeric_encoder", "mapper", "decoder"}
    assert "kernel" not in trained["decoder"]["proj"]  # the output projection is the embedding table
    step = checkpoint._restore_as_numpy(tmp_path / "straight" / "checkpoints" / "4" / checkpoint.STATE, "frozen")
    jax.tree.map(np.testing.assert_array_equal, step["numeric_encoder"],
                 checkpoint.load_params(encoder_dir)[1]["numeric_encoder"])


@pytest.mark.slow
def test_a_decoder_checkpoint_continues_whole_and_an_encoder_pair_is_refused_as_one(encoder_dir, tmp_path):
    sr_train.train_and_evaluate(tiny_sr_config(train_encoder=True, total_steps=2), str(tmp_path / "first"))
    config = tiny_sr_config(pretrained_sr=str(tmp_path / "first"))
    task = sr_train.sr_task(config, None)
    params, frozen = task.init(jax.random.key(5))
    first = checkpoint.load_params(str(tmp_path / "first"))[1]
    jax.tree.map(np.testing.assert_array_equal, params["decoder"], first["decoder"])
    with pytest.raises(ValueError, match="holds no decoder"):
        sr_train.sr_task(tiny_sr_config(pretrained_sr=encoder_dir), None)


def test_sr_configs_build_and_start_with_their_command(monkeypatch):
    import glob
    import importlib.util
    import os

    from snipjax import models

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.syspath_prepend(repo)
    paths = sorted(glob.glob(os.path.join(repo, "configs", "sr", "*.py")))
    assert paths
    for path in paths:
        spec = importlib.util.spec_from_file_location("sr_config_module", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        models.make_sr_model(module.get_config())
        command = next(line.strip() for line in module.__doc__.splitlines()[1:] if line.strip())
        assert "snipjax.tasks.sr.train" in command and os.path.relpath(path, repo) in command


@pytest.mark.slow
@pytest.mark.parametrize("point_input", ["tokens", "values"])
def test_a_larger_dmax_widens_a_pretrained_encoder_without_changing_it_on_old_inputs(tmp_path, point_input):
    from snipjax import models
    from snipjax.data.tokens import encode_point_sets

    encoder_config = small_config(**{"data.max_dim": 1, "model.point_input": point_input})
    encoder = models.make_numeric_encoder(encoder_config)
    x = np.linspace(-2, 2, encoder_config.data.n_points)
    points_1d = encode_point_sets([x], [np.sin(x)], 1)
    trained = encoder.init(jax.random.key(1), jnp.asarray(points_1d))["params"]
    checkpoint.export_params(str(tmp_path), encoder_config, {"numeric_encoder": trained})

    config = tiny_sr_config(pretrained=str(tmp_path), train_encoder=True)
    assert config.data.max_dim == 2
    params, _ = sr_train.sr_task(config, None).init(jax.random.key(2))
    wide_config = sr_train.model_config(config)[0]
    assert wide_config.data.max_dim == 2
    wide = models.make_numeric_encoder(wide_config)
    points_2d = encode_point_sets([x], [np.sin(x)], 2)
    np.testing.assert_allclose(wide.apply({"params": params["numeric_encoder"]}, jnp.asarray(points_2d)),
                               encoder.apply({"params": trained}, jnp.asarray(points_1d)), rtol=1e-5, atol=1e-5)
    # x_1 has no effect yet but can learn one: the new hidden units read it and their outputs get gradients.
    points_2d_x1 = jnp.asarray(encode_point_sets([np.column_stack([x, x])], [np.sin(x)], 2))
    grads = jax.grad(lambda p: wide.apply({"params": p}, points_2d_x1).sum())(params["numeric_encoder"])
    old_width = 3 * encoder_config.model.float_emb_dim * 2
    assert np.abs(grads["embedder"]["fc"]["kernel"][old_width:]).max() > 0
