"""results/bench/side_by_side.py reads the official train.py's samples/s off its log.

The fixture is the log of a real run of the official code (`train.py --cpu True --print_freq 1`, batch 64,
d 256, 4 layers, 8 heads, one warm-up and two timed steps on a 2-core CPU), from its command line on.
"""

import pytest

from script_helpers import ROOT, load_script

LOG = (ROOT / "tests" / "fixtures" / "official_train_log_sample.txt").read_text()
side_by_side = load_script("results/bench/side_by_side.py", "side_by_side")


def test_drops_the_warmup_step_and_weighs_steps_by_their_time():
    result = side_by_side.parse_official_train_log(LOG)
    assert result["steps"] == 2
    assert result["iterations"] == [2, 3]
    # 64 samples at 4.27/s, then 64 at 5.97/s: 128 samples over their summed time.
    assert result["samples_per_s"] == pytest.approx(128 / (64 / 4.27 + 64 / 5.97))


def test_without_warmup_every_step_counts():
    result = side_by_side.parse_official_train_log(LOG, warmup_steps=0)
    assert result["iterations"] == [1, 2, 3]
    assert result["samples_per_s"] == pytest.approx(3 / (1 / 4.25 + 1 / 4.27 + 1 / 5.97))


def test_a_log_without_timed_steps_is_an_error():
    only_warmup = LOG.split(" -       2 - ")[0]
    with pytest.raises(ValueError, match="no step line"):
        side_by_side.parse_official_train_log(only_warmup)
