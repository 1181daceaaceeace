"""The SRBench-style runner: end to end on two formulas, shards, resume, datasets, comparison summaries."""

import csv
import json

import numpy as np
import pytest

from snipjax.tasks.sr import benchmark
from test_sr_regressor import tiny_checkpoint  # noqa: F401  (the fixture)


def rows_of(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_the_runner_fits_each_problem_once_and_resumes(tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "nguyen.csv"
    arguments = ["--checkpoint", tiny_checkpoint, "--formulas", "classic:Nguyen-", "--max-features", "2",
                 "--points", "60", "--iterations", "1", "--out", str(out)]
    assert benchmark.main(arguments + ["--shard", "0/7"]) == 0  # Nguyen-1 and Nguyen-8
    first = rows_of(out)
    assert [row["problem"] for row in first] == ["Nguyen-1", "Nguyen-8"]
    assert set(first[0]) == set(benchmark.COLUMNS) and first[0]["optimizer"] == "gwo"
    assert all(-np.inf < float(row["r2_predict"]) <= 1 and int(row["_complexity_predict"]) > 0 for row in first)

    published = tmp_path / "published.csv"
    published.write_text("problem,r2_predict,_complexity_predict,time\nNguyen-1,0.999,7,10\nNguyen-8,0.5,3,20\n"
                         "Nguyen-2,0.1,1,1\n")
    capsys.readouterr()
    assert benchmark.main(arguments + ["--shard", "0/7", "--compare", f"paper={published}"]) == 0  # resumes
    assert rows_of(out) == first  # nothing refit
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ours"]["problems"] == 2
    assert result["paper"] == {"problems": 2, "share_r2_above_0.99": 0.5, "share_r2_above_0.999": 0.0,
                               "median_r2": 0.7495, "mean_complexity": 5.0, "median_seconds": 15.0}


def test_shards_partition_the_problems():
    items = list(range(23))
    parts = [benchmark.shard(items, f"{i}/4") for i in range(4)]
    assert sorted(sum(parts, [])) == items and all(parts)
    with pytest.raises(ValueError, match="i must be in 0..3"):
        benchmark.shard(items, "4/4")
    with pytest.raises(ValueError, match="i/n"):
        benchmark.shard(items, "half")


def test_noise_is_relative_to_the_rms_of_y_and_only_on_the_fit_part():
    X = np.random.default_rng(0).uniform(size=(4000, 1))
    y = 3.0 + X[:, 0]
    X_fit, X_test, y_fit, y_test = benchmark.split(X, y, 0.1, seed=1)
    clean = benchmark.split(X, y, 0.0, seed=1)
    assert len(y_fit) == 3000 and len(y_test) == 1000
    np.testing.assert_array_equal(X_fit, clean[0])
    np.testing.assert_array_equal(y_test, clean[3])
    np.testing.assert_allclose(np.std(y_fit - (3.0 + X_fit[:, 0])), 0.1 * np.sqrt(np.mean(y_fit**2)), rtol=0.1)


def test_a_dataset_csv_is_read_with_its_target(tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    path = tmp_path / "table.csv"
    path.write_text("a,target,b\n1,2,3\n4,5,6\n")
    X, y, name = benchmark.read_dataset(str(path), "target")
    np.testing.assert_array_equal(X, [[1, 3], [4, 6]])
    np.testing.assert_array_equal(y, [2, 5])
    assert benchmark.read_dataset(str(path), None)[2] == "b"
    assert benchmark.main(["--checkpoint", tiny_checkpoint, "--data", str(path), "--target", "c", "--out",
                           str(tmp_path / "o.csv")]) == 2
    assert "no column 'c'" in capsys.readouterr().err
    assert benchmark.main(["--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "config.json not found" in capsys.readouterr().err
