"""Reproduce results/property/: paper Table 1 at CPU scale, both directions, a low-data curve, latent spaces.

  python results/property/reproduce.py [--pretrained runs/pretrain_cpu_1d] [--config configs/property/cpu.py]
  python results/property/reproduce.py report      # README.md and the PNGs from results.json

Runs `python -m snipjax.tasks.property` for every property × mode (supervised, frozen, finetuned): numeric
properties from the symbolic encoder (the paper's direction) and formula properties from the numeric encoder;
then NCR and upwardness with 100, 300, 1k, 3k and 10k training labels; then draws the symbolic latents of the
test expressions, from the pretrained and from an untrained encoder, coloured by each property. The runs share
this process, and so one generation of the samples; each is what `python -m snipjax.tasks.property` with its
recorded command gives. Every run's metrics land in results.json as they finish, so an interrupted
reproduction resumes with the next run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # results/common.py

from common import machine, pyplot  # noqa: E402

from snipjax.config import load_config_file  # noqa: E402
from snipjax.data.files import atomic_write, write_text  # noqa: E402

MODES = ("supervised", "frozen", "finetuned")
TABLE_PROPERTIES = ("ncr", "upward", "yavg", "oscillation")
FORMULA_PROPERTIES = ("n_ops", "depth", "periodic", "exponential", "logarithmic")
LOW_DATA_PROPERTIES = ("ncr", "upward")
LOW_DATA_SIZES = (100, 300, 1000, 3000, 10000)
# Paper Table 1: (R², NMSE) per property and mode.
PAPER = {"ncr": {"supervised": (0.4701, 0.5299), "frozen": (0.9269, 0.0731), "finetuned": (0.9317, 0.0683)},
         "upward": {"supervised": (0.4644, 0.5356), "frozen": (0.9460, 0.0540), "finetuned": (0.9600, 0.0400)}}



def run_one(config_file: str, pretrained: str, prop: str, mode: str, n_train: int | None = None,
            extra: dict | None = None) -> dict:
    """One property run, in this process (so all runs share one generation of the samples); the result is
    what `python -m snipjax.tasks.property` with the recorded command gives."""
    from snipjax.tasks import property as task

    name = f"{prop}_{mode}" + (f"_n{n_train}" if n_train else "")
    workdir = f"runs/property/{name}"
    overrides = {"property": prop, "mode": mode, "pretrained": pretrained, **(extra or {})}
    if n_train:
        overrides["n_train"] = n_train
    shutil.rmtree(ROOT / workdir, ignore_errors=True)
    command = " ".join(["python -m snipjax.tasks.property", f"--config={config_file}", f"--workdir={workdir}",
                        *(f"--config.{k}={v}" for k, v in overrides.items())])
    print(f"running: {command}", flush=True)
    config = load_config_file(ROOT / config_file)
    config.update_from_flattened_dict(overrides)
    start = time.time()
    metrics = task.train_and_evaluate(config, str(ROOT / workdir))
    return {"property": prop, "mode": mode, "n_train": n_train, "command": command,
            "wall_s": round(time.time() - start, 1), "metrics": metrics}


def latents(config_file: str, pretrained: str, n: int = 1000) -> dict:
    """Symbolic latents of the first n test expressions: pretrained and untrained encoder; their properties."""
    import jax
    import numpy as np

    from snipjax import checkpoint, models
    from snipjax.config import property_config
    from snipjax.data.pipeline import generate
    from snipjax.tasks import property as task

    config = property_config()
    encoder_cfg, params = checkpoint.load_params(pretrained)
    data = task.data_config(config, encoder_cfg)
    test = generate(data, config.seed + task.TEST_SEED_OFFSET, n)
    model = models.make_snip(encoder_cfg)
    untrained = jax.jit(model.init)(jax.random.key(1), *(
        np.zeros((1, *test[k].shape[1:]), test[k].dtype) for k in ("points", "symbols", "symbol_len")))["params"]
    encode = jax.jit(lambda p, s, n: model.apply({"params": p}, s, n, method="encode_symbolic"))
    out = {name: np.asarray(encode(p, test["symbols"], test["symbol_len"]))
           for name, p in (("pretrained", params), ("untrained", untrained))}
    return {**out, **{prop: test[task.label_name(prop)] for prop in TABLE_PROPERTIES}}


def project(z):
    """2-D t-SNE of the latents (PCA first to 30 dims), as the paper's latent-space figures."""
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    z = PCA(n_components=min(30, z.shape[1]), random_state=0).fit_transform(np.asarray(z, np.float64))
    return TSNE(n_components=2, init="pca", random_state=0, perplexity=30).fit_transform(z)



def plot_latents(pretrained: str, config: str) -> None:
    plt = pyplot()
    data = latents(config, pretrained)
    fig, axes = plt.subplots(2, len(TABLE_PROPERTIES), figsize=(4.2 * len(TABLE_PROPERTIES), 8))
    for row, encoder in enumerate(("pretrained", "untrained")):
        xy = project(data[encoder])
        for col, prop in enumerate(TABLE_PROPERTIES):
            ax = axes[row, col]
            points = ax.scatter(xy[:, 0], xy[:, 1], c=data[prop], s=5, cmap="viridis")
            fig.colorbar(points, ax=ax, fraction=0.046)
            ax.set(title=f"{encoder} encoder, colour: {prop}", xticks=[], yticks=[])
    fig.suptitle("t-SNE of symbolic latents of 1,000 test expressions")
    fig.tight_layout()
    with atomic_write(HERE / "latents.png", "wb") as png:
        fig.savefig(png, format="png", dpi=100)


def plot_low_data(runs: list[dict]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(LOW_DATA_PROPERTIES), figsize=(6 * len(LOW_DATA_PROPERTIES), 4.2))
    for ax, prop in zip(axes, LOW_DATA_PROPERTIES):
        for mode in MODES:
            points = sorted((r["n_train"] or 10000, r["metrics"]["r2"]) for r in runs if r["property"] == prop
                            and r["mode"] == mode and (r["n_train"] or 10000) in LOW_DATA_SIZES)
            if points:
                ax.plot(*zip(*points), "o-", label=mode)
        ax.set(xscale="log", xlabel="training labels", ylabel="test R²", title=f"{prop}: R² against labels")
        ax.axhline(0, color="gray", lw=0.5)
        ax.legend()
    fig.tight_layout()
    with atomic_write(HERE / "low_data.png", "wb") as png:
        fig.savefig(png, format="png", dpi=110)


def find(runs, prop, mode, n_train=None):
    return next((r["metrics"] for r in runs if r["property"] == prop and r["mode"] == mode
                 and r["n_train"] == n_train), None)


def report() -> None:
    results = json.loads((HERE / "results.json").read_text())
    runs = results["runs"]
    plot_low_data(runs)
    m = results["machine"]
    lines = [
        "# Property prediction at CPU scale (paper Table 1)", "",
        "Written by `reproduce.py` from `results.json`; `python results/property/reproduce.py report` redraws it.",
        "",
        f"- command: `{results['command']}`; each run's own command is in `results.json`",
        f"- config: `{results['config']}`; encoder: `{results['pretrained']}` "
        f"(from `{results['pretrained_config']}`, see results/pretrain/)",
        f"- machine: {m['processor']}, {m['cpu_count']} cores, {m['platform']}, Python {m['python']}, "
        f"JAX {m['jax']}; date {results['date']}",
        "- test set: 1,000 expressions from their own seed stream, the training sampler "
        "(`test_min_binary_ops_per_dim=0`); labels from raw y (the official export)",
        "",
        "## Numeric properties from the symbolic encoder (paper Table 1 layout)", "",
        "R² / NMSE on the test set; accuracy: share within 0.1 of the truth after min-max scaling by the truth's "
        "range; chance: predicting the training mean.", "",
        "| property | supervised | SNIP frozen | SNIP finetuned | paper: supervised | frozen | finetuned | "
        "acc@0.1 sup / frozen / fine | chance R² / acc@0.1 |",
        "|---|---|---|---|---|---|---|---|---|"]
    for prop in TABLE_PROPERTIES:
        ours = [find(runs, prop, mode) for mode in MODES]
        if not all(ours):
            continue
        paper = PAPER.get(prop)
        paper_cells = [f"{paper[mode][0]:.4f} / {paper[mode][1]:.4f}" if paper else "n/a" for mode in MODES]
        lines.append(
            f"| {prop} | " + " | ".join(f"{o['r2']:.4f} / {o['nmse']:.4f}" for o in ours) + " | "
            + " | ".join(paper_cells) + " | " + " / ".join(f"{o['acc_0.1']:.3f}" for o in ours)
            + f" | {ours[0]['chance_r2']:.4f} / {ours[0]['chance_acc_0.1']:.3f} |")
    lines += ["", "## Properties of the formula from the numeric encoder (not in the paper: the official code "
              "cannot run this direction)", "",
              "Counts: R² / NMSE. Operator families (0/1, BCE): accuracy against the majority-class chance.", "",
              "| property | supervised | SNIP frozen | SNIP finetuned | chance |", "|---|---|---|---|---|"]
    for prop in FORMULA_PROPERTIES:
        ours = [find(runs, prop, mode) for mode in MODES]
        if not all(ours):
            continue
        if "accuracy" in ours[0]:
            cells = [f"acc {o['accuracy']:.3f}" for o in ours] + [f"acc {ours[0]['chance_accuracy']:.3f}"]
        else:
            cells = [f"{o['r2']:.4f} / {o['nmse']:.4f}" for o in ours] + [f"R² {ours[0]['chance_r2']:.4f}"]
        lines.append(f"| {prop} | " + " | ".join(cells) + " |")
    lines += ["", "`dim` needs an encoder pretrained with Dmax > 1; the 1-D encoder sees one input dimension only.",
              "", "## Fewer labels", "", "Test R² against the number of training labels (same steps for every "
              "size):", "", "| property | labels | supervised | SNIP frozen | SNIP finetuned |",
              "|---|---|---|---|---|"]
    for prop in LOW_DATA_PROPERTIES:
        for n in LOW_DATA_SIZES:
            ours = [find(runs, prop, mode, None if n == 10000 else n) for mode in MODES]
            if all(ours):
                lines.append(f"| {prop} | {n} | " + " | ".join(f"{o['r2']:.4f}" for o in ours) + " |")
    lines += ["", "![low data](low_data.png)", "", "## Latent space", "",
              "t-SNE of the symbolic latents of 1,000 test expressions, coloured by each property: the pretrained "
              "encoder (top) against the same network untrained (bottom).", "", "![latents](latents.png)", ""]
    write_text(HERE / "README.md", "\n".join(lines))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="all", choices=("all", "report"))
    parser.add_argument("--pretrained", default="runs/pretrain_cpu_1d")
    parser.add_argument("--pretrained-config", default="configs/cpu_1d.py")
    parser.add_argument("--config", default="configs/property/cpu.py")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run, e.g. total_steps=100")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # paths are relative to the repository root
    from absl import logging

    logging.set_verbosity(logging.INFO)
    extra = dict(item.split("=", 1) for item in args.set)
    for key, value in extra.items():
        try:
            extra[key] = json.loads(value)  # numbers and booleans; anything else stays a string
        except ValueError:
            pass
    if args.what == "report":
        report()
        return 0
    out = HERE / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {"runs": []}
    results.update(command="python results/property/reproduce.py " + " ".join(argv), config=args.config,
                   pretrained=args.pretrained, pretrained_config=args.pretrained_config, machine=machine(),
                   date=datetime.date.today().isoformat())
    plan = [(p, m, None) for p in TABLE_PROPERTIES + FORMULA_PROPERTIES for m in MODES]
    plan += [(p, m, n) for p in LOW_DATA_PROPERTIES for n in LOW_DATA_SIZES[:-1] for m in MODES]
    for prop, mode, n in plan:
        if find(results["runs"], prop, mode, n) is None:
            results["runs"].append(run_one(args.config, args.pretrained, prop, mode, n, extra))
            write_text(out, json.dumps(results, indent=1) + "\n")
    plot_latents(args.pretrained, args.config)
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
