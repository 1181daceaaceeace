"""The functional API: load, encode_numeric, encode_symbolic."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy

from snipjax import api, checkpoint, models
from snipjax.data import tokens
from snipjax.task_data import example_inputs
from training_helpers import small_config


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    config = small_config(**{"data.max_dim": 2, "data.normalize_y": False})
    inputs = [jnp.zeros(s.shape, s.dtype) for s in example_inputs(config).values()]
    params = jax.jit(models.make_snip(config).init)(jax.random.key(0), *inputs)["params"]
    path = tmp_path_factory.mktemp("export")
    checkpoint.export_params(path, config, params)
    return path, config, params


@pytest.fixture(scope="module")
def loaded(exported):
    return api.load(exported[0])


def numeric_reference(config, params, x, y):
    points = tokens.encode_points(x, y, config.data.max_dim)[None]
    return models.make_snip(config).apply({"params": params}, points, method="encode_numeric")[0]


def test_load_gives_the_config_and_params_on_device(exported, loaded):
    _, config, params = exported
    loaded_config, loaded_params = loaded
    assert loaded_config == config
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(loaded_params))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(loaded_params), jax.device_get(params))


def test_encode_numeric_embeds_one_dataset_like_the_model(loaded):
    config, params = loaded
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 2))
    y = np.sin(x[:, 0]) * x[:, 1]
    z = api.encode_numeric(params, x, y, config=config, normalize=False)
    assert z.shape == (1, config.model.latent_dim)
    np.testing.assert_allclose(z[0], numeric_reference(config, params, x, y), rtol=1e-5, atol=1e-6)


def test_encode_numeric_batches_equal_single_datasets_and_normalize_like_training(loaded):
    config, params = loaded
    rng = np.random.default_rng(1)
    x = rng.uniform(-5, 5, (5, 50))  # five 1-D datasets: X may omit the input-dimension axis
    y = x**2 + 3
    encode = functools.partial(api.encode_numeric, config=config, batch_size=2)  # chunks of 2, last one padded
    z = encode(params, x, y)
    assert z.shape == (5, config.model.latent_dim)
    for i in range(5):
        standardized = (x[i] - x[i].mean()) / x[i].std()
        np.testing.assert_allclose(z[i], numeric_reference(config, params, standardized[:, None], y[i]),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(z[i], encode(params, x[i][:, None], y[i])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x_shape, y_shape, message", [
    ((50, 3), (50,), "at most 2"),
    ((50, 1), (40,), "X must be y's shape"),
    ((2, 3, 4, 1), (2, 3, 4), "y must be"),
    ((30, 1), (30,), "30 points per dataset, but the model was trained on exactly 50"),
    ((0, 1), (0,), "hold no data"),
])
def test_encode_numeric_refuses_wrong_shapes(loaded, x_shape, y_shape, message):
    config, params = loaded
    with pytest.raises(ValueError, match=message):
        api.encode_numeric(params, np.zeros(x_shape), np.zeros(y_shape), config=config)


@pytest.mark.parametrize("array, value", [("X", np.nan), ("y", np.inf)])
def test_encode_numeric_names_non_finite_values(loaded, array, value):
    config, params = loaded
    x, y = np.zeros((50, 1)), np.zeros(50)
    (x if array == "X" else y)[7] = value
    with pytest.raises(ValueError, match=rf"^{array} .*{value}.*index \(7"):
        api.encode_numeric(params, x, y, config=config)


def test_encode_symbolic_takes_strings_and_sympy(loaded):
    config, params = loaded
    x0, x1 = sympy.symbols("x_0 x_1")
    formulas = ["sin(x_0) + 2.5*x_1", x0 * sympy.exp(x1), "x_0**2"]
    z = api.encode_symbolic(params, formulas, config=config)
    assert z.shape == (3, config.model.latent_dim)
    symbols, lengths = tokens.encode_expressions(formulas, config.data.max_dim, config.data.max_len)
    reference = models.make_snip(config).apply({"params": params}, symbols, lengths, method="encode_symbolic")
    np.testing.assert_allclose(z, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(api.encode_symbolic(params, "x_0**2", config=config)[0], z[2], rtol=1e-5,
                               atol=1e-6)


def test_more_points_are_subsampled_to_the_trained_count_and_fewer_need_consent(loaded):
    config, params = loaded
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 1))
    y = np.cos(x[:, 0])
    one = api.encode_numeric(params, x, y, config=config)
    subsets = np.sort(np.random.default_rng(0).choice(400, 50, replace=False))
    np.testing.assert_allclose(one, api.encode_numeric(params, x[subsets], y[subsets], config=config),
                               rtol=1e-5, atol=1e-6)
    several = api.encode_numeric(params, x, y, config=config, subsamples=4, reduce=None)
    assert several.shape == (1, 4, config.model.latent_dim)
    np.testing.assert_allclose(api.encode_numeric(params, x, y, config=config, subsamples=4),
                               several.mean(axis=1), rtol=1e-5, atol=1e-6)
    few = api.encode_numeric(params, x[:30], y[:30], config=config, allow_fewer_points=True)
    assert few.shape == (1, config.model.latent_dim) and np.isfinite(few).all()


def test_token_ids_go_in_directly_and_equal_strings(loaded):
    config, params = loaded
    from snipjax.data.samples import DataSpec, generate_sample

    spec = DataSpec(max_dim=2, normalize_y=False, n_points=50, max_len=64)
    samples = [generate_sample(spec, 0, i) for i in range(6)]
    symbols, lengths = tokens.encode_expressions([s.expression for s in samples], 2, 64)
    from_ids = api.encode_symbolic_tokens(params, symbols, lengths, config=config)
    from_strings = api.encode_symbolic(params, [s.expression.infix() for s in samples], config=config)
    np.testing.assert_array_equal(from_ids, from_strings)
    points = tokens.encode_point_sets([s.x for s in samples], [s.y for s in samples], 2)
    from_point_ids = api.encode_numeric_tokens(params, points, config=config)
    for i, s in enumerate(samples):
        np.testing.assert_allclose(from_point_ids[i], api.encode_numeric(params, s.x, s.y, config=config,
                                                                         normalize=False)[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="float-token ids"):
        api.encode_numeric_tokens(params, points[..., :3], config=config)


def test_an_empty_list_of_formulas_gives_no_latents(loaded):
    config, params = loaded
    assert api.encode_symbolic(params, [], config=config).shape == (0, config.model.latent_dim)


def test_encode_numeric_names_what_it_cannot_normalize_or_encode(loaded):
    config, params = loaded
    x, y = np.linspace(-1, 1, 50)[:, None], np.linspace(0, 1, 50)
    with pytest.raises(ValueError, match=r"^X is too large to normalize: its spread overflows float64 \(largest "
                                         r"\|value\| 1e\+300\)"):
        api.encode_numeric(params, x * 1e300, y, config=config)
    for name, arrays in (("X", (x + 1j, y)), ("y", (x, y * (1 + 1j)))):
        with pytest.raises(ValueError, match=f"^{name} is complex"):
            api.encode_numeric(params, *arrays, config=config)
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"^y holds 1 non-finite entry \(first: .*nan.* at index \(3,\)\)"):
        api.encode_numeric(params, x, y, config=config)


@pytest.mark.parametrize("encode, inputs", [
    (api.encode_numeric, (np.zeros((50, 1)), np.zeros(50))),
    (api.encode_symbolic, (["x_0"],)),
    (api.encode_numeric_tokens, (np.zeros((1, 50, 9)),)),
])
def test_params_and_config_in_swapped_order_are_named(loaded, encode, inputs):
    config, params = loaded
    with pytest.raises(TypeError, match=r"config= must be the model's ConfigDict.*got a dict \(params and config "
                                        r"swapped\?\)"):
        encode(config, *inputs, config=params)
    with pytest.raises(TypeError, match="params must be the parameter dict"):
        encode("runs/tiny", *inputs, config=config)


@pytest.mark.parametrize("change, message", [
    ({"X": ["a"] * 50}, "X must be an array of real numbers"),
    ({"X": [[1.0, 2.0], [3.0]]}, "X must be an array of real numbers, of one length per axis"),
    ({"subsamples": 0}, "subsamples must be an integer >= 1, got 0"),
    ({"subsamples": 2.5}, "subsamples must be an integer >= 1, got 2.5"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"normalize": "no"}, "normalize must be True or False, got 'no'"),
])
def test_encode_numeric_names_a_bad_argument(loaded, change, message):
    config, params = loaded
    arguments = {"X": np.linspace(-1, 1, 50), "y": np.linspace(0, 1, 50), **change}
    with pytest.raises(ValueError, match=re.escape(message)):
        api.encode_numeric(params, arguments.pop("X"), arguments.pop("y"), config=config, **arguments)


def test_token_ids_outside_the_vocabulary_or_lengths_outside_the_sequence_are_refused(loaded):
    config, params = loaded
    with pytest.raises(ValueError, match=r"symbols holds ids outside the vocabulary 0\.\.\d+ \(first: 99999"):
        api.encode_symbolic_tokens(params, np.full((1, 10), 99999), np.array([5]), config=config)
    for length in (0, 11):
        with pytest.raises(ValueError, match=r"symbol_len must count both <EOS> and lie in 2\.\.10"):
            api.encode_symbolic_tokens(params, np.zeros((1, 10)), np.array([length]), config=config)
    with pytest.raises(ValueError, match=r"points holds ids outside the vocabulary 0\.\.\d+ \(first: -1"):
        api.encode_numeric_tokens(params, np.full((1, 50, 9), -1), config=config)
    with pytest.raises(TypeError, match="load takes the path of a training workdir or an export dir, got NoneType"):
        api.load(None)
