"""Reproduce results/pretrain/: which recipe makes a small SNIP learn on a CPU, and the final CPU encoders.

  python results/pretrain/reproduce.py ablation [--minutes 3]   # every variant for the same wall-clock minutes
  python results/pretrain/reproduce.py final                     # configs/cpu_1d.py, then configs/cpu_10d.py
  python results/pretrain/reproduce.py ceiling                   # how high 256-way top-1 can go on this data
  python results/pretrain/reproduce.py report                    # README.md and the PNGs from the recorded runs

Each ablation variant is configs/tiny.py with the keys that shape the run overridden (`ABLATION`). Equal
wall-clock: a short benchmark of the variant's train step (`python -m snipjax.bench train`) gives its
samples/s, from which its step count for `--minutes` follows; a cosine schedule then ends at that step. The
runs record held-out 256-way retrieval every sixth of the run, the latent norms, the logit scale and the
gradient norm. Everything is written next to this script: ablation.json, ablation.png, final_<name>.json,
final_<name>.jsonl, curve.png and README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # results/common.py

from common import machine, pyplot  # noqa: E402

from snipjax.data.files import atomic_write, write_text  # noqa: E402

ABLATION_BASE = "configs/tiny.py"  # every key that shapes the run is overridden below
# name: (config file, overrides). cpu_1d_tokens is the recipe before points became value features, kept to
# compare with at equal steps.
FINAL_CONFIGS = {"cpu_1d": ("configs/cpu_1d.py", {}), "cpu_10d": ("configs/cpu_10d.py", {}),
                 "cpu_1d_tokens": ("configs/cpu_1d.py", {"model.point_input": "tokens", "total_steps": 5000,
                                                         "optim.warmup_steps": 250})}

# The short-run optimizer every non-official variant shares unless it names another one.
SHORT_RUN = {"optim.kind": "adamw_cosine", "optim.lr": 2e-3, "optim.weight_decay": 0.0}
OFFICIAL_ARCH = {"loss.kind": "infonce", "model.norm": "post", "model.numeric_positions": True,
                 "model.pool_mask": False, "model.float_init": "official", "model.point_input": "tokens",
                 "model.constant_input": "tokens",
                 "data.max_len": 200,
                 "batch_size": 64, "model.d_model": 64, "model.n_layers": 2, "model.d_ff": 128,
                 "model.n_heads": 4, "model.latent_dim": 64}
BASE = {**OFFICIAL_ARCH, **SHORT_RUN}
VALUES_CLIP = {**BASE, "model.point_input": "values", "loss.kind": "clip"}
ABLATION: dict[str, dict] = {
    "official recipe (Adam 4e-5, 10k warmup, inverse sqrt)": {
        **OFFICIAL_ARCH, "optim.kind": "adam_inverse_sqrt", "optim.lr": 4e-5, "optim.warmup_steps": 10_000},
    "base: official loss and model, AdamW 2e-3 cosine": BASE,
    "+ float tokens initialised from their values": {**BASE, "model.float_init": "value"},
    "+ CLIP loss (cosine, learned temperature)": {**BASE, "loss.kind": "clip"},
    "+ points as value features": {**BASE, "model.point_input": "values"},
    # The rest start from the best of the above: points as value features with the CLIP loss.
    "+ points as value features, CLIP loss": VALUES_CLIP,
    "+ points as value features, CLIP loss, masked pooling, symbols cut at 80":
        {**VALUES_CLIP, "model.pool_mask": True, "data.max_len": 80},
    "+ points as value features, CLIP loss, depth 4": {**VALUES_CLIP, "model.n_layers": 4},
    "+ points and constants as value features, CLIP loss": {**VALUES_CLIP, "model.constant_input": "values"},
    "+ points as value features, CLIP loss, symbols' float tokens initialised from their values":
        {**VALUES_CLIP, "model.float_init": "value"},
    "+ points as value features, SigLIP loss": {**VALUES_CLIP, "loss.kind": "siglip"},
    "+ points as value features, CLIP loss, pre-LN": {**VALUES_CLIP, "model.norm": "pre"},
    "+ points as value features, CLIP loss, no positions on the points":
        {**VALUES_CLIP, "model.numeric_positions": False},
    "+ points as value features, CLIP loss, lr 5e-3": {**VALUES_CLIP, "optim.lr": 5e-3},
    "+ points as value features, CLIP loss, batch 128": {**VALUES_CLIP, "batch_size": 128},
    "+ points as value features, CLIP loss, width 128 (4 heads, FFN 256, latent 128)":
        {**VALUES_CLIP, "model.d_model": 128, "model.d_ff": 256, "model.latent_dim": 128},
}


# Keys that change what a step costs (loss kind, norm placement, positions and initialisation barely do).
COST_KEYS = ("batch_size", "model.d_model", "model.n_layers", "model.d_ff", "model.latent_dim", "data.max_len")



def flags_of(overrides: dict) -> list[str]:
    return [f"--config.{k}={v}" for k, v in overrides.items()]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def samples_per_second(config: str, overrides: dict) -> float:
    """The variant's training throughput from a short `bench train` run (data producer included)."""
    out = subprocess.run([sys.executable, "-m", "snipjax.bench", "train", f"--config={config}", "--steps=8",
                          *flags_of(overrides)], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["samples_per_s"]


def train(config: str, overrides: dict, workdir: str) -> tuple[list[dict], float, str]:
    """A fresh training run; returns its metrics rows, wall seconds and the command as typed."""
    shutil.rmtree(ROOT / workdir, ignore_errors=True)
    command = [sys.executable, "-m", "snipjax.train", f"--config={config}", f"--workdir={workdir}",
               *flags_of(overrides)]
    shown = " ".join(["python", *command[1:]])
    print(f"running: {shown}", flush=True)
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    return read_jsonl(ROOT / workdir / "metrics.jsonl"), time.time() - start, shown


def cost_key(overrides: dict) -> str:
    """The overrides that change the cost of a step; variants equal in these share one throughput probe."""
    return json.dumps({k: overrides[k] for k in COST_KEYS if k in overrides}, sort_keys=True)


def run_ablation(minutes: float) -> None:
    """Every variant for the same minutes. The throughput probes run first, back to back, one per step cost
    (`COST_KEYS`), so that the step counts come from one machine state; the runs are then fixed by their step
    counts and their results do not depend on what else the machine does meanwhile."""
    out = HERE / "ablation.json"
    done = json.loads(out.read_text()) if out.exists() else {"variants": [], "probes": {}}
    for overrides in ABLATION.values():
        key = cost_key(overrides)
        if key not in done["probes"]:
            done["probes"][key] = samples_per_second(ABLATION_BASE, overrides)
            write_text(out, json.dumps(done, indent=1) + "\n")
    finished = {v["name"] for v in done["variants"]}
    for i, (name, overrides) in enumerate(ABLATION.items()):
        if name in finished:  # an interrupted ablation resumes with the next variant
            continue
        rate = done["probes"][cost_key(overrides)]
        steps = max(60, int(minutes * 60 * rate / overrides["batch_size"]))
        schedule = {} if overrides["optim.kind"] == "adam_inverse_sqrt" else {"optim.warmup_steps": steps // 10}
        run = {**overrides, **schedule, "total_steps": steps, "eval_every": max(steps // 6, 1),
               "log_every": max(steps // 30, 1), "checkpoint_every": steps}
        rows, wall, command = train(ABLATION_BASE, run, f"runs/ablation/{i:02d}")
        evals = [r for r in rows if r["split"] == "eval"]
        done["variants"].append({"name": name, "overrides": run, "bench_samples_per_s": rate, "steps": steps,
                                 "wall_s": round(wall, 1), "command": command, "final": evals[-1],
                                 "evals": evals, "train": [r for r in rows if r["split"] == "train"]})
        done.update(minutes=minutes, machine=machine(), date=datetime.date.today().isoformat())
        write_text(out, json.dumps(done, indent=1) + "\n")
    report()


def run_final(names: list[str]) -> None:
    for name in names:
        config_file, overrides = FINAL_CONFIGS[name]
        rows, wall, command = train(config_file, overrides, f"runs/pretrain_{name}")
        config = json.loads((ROOT / f"runs/pretrain_{name}" / "config.json").read_text())
        shutil.copy(ROOT / f"runs/pretrain_{name}" / "metrics.jsonl", HERE / f"final_{name}.jsonl")
        evals = [r for r in rows if r["split"] == "eval"]
        summary = {"command": command, "config_file": config_file, "config": config,
                   "machine": machine(), "date": datetime.date.today().isoformat(), "wall_time_s": round(wall, 1),
                   "final_eval": evals[-1], "best_eval": max(evals, key=lambda r: r["top1_n2s"] + r["top1_s2n"])}
        write_text(HERE / f"final_{name}.json", json.dumps(summary, indent=2) + "\n")
        if name == "cpu_1d_tokens":
            record_mantissa_embeddings(f"runs/pretrain_{name}")
    report()


RESOLUTIONS = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)


def run_ceiling() -> None:
    """The best 256-way top-1 any encoder can reach on the held-out pairs of the 1-D recipe when it tells two
    functions apart only if their curves differ by more than a resolution r. Each formula is evaluated on
    every held-out point set and its outputs normalized as the data are; where the RMS distance to that
    set's outputs is at most r, the two cannot be told apart, and a perfect encoder at resolution r guesses
    among them: expected top-1 = mean of 1 / (number of such candidates).

    Then the trained 1-D encoders (the FINAL_CONFIGS runs whose workdirs are here) are scored the same way:
    a retrieval is right when the retrieved formula's curve is within r of the query's (functional top-1),
    so that a line retrieved for another line with the same normalized curve counts. Written to
    ceiling.json."""
    import numpy as np
    from sklearn.metrics import r2_score

    from snipjax.config import load_config_file
    from snipjax.data import points
    from snipjax.data.samples import as_spec, generate_samples
    from snipjax.task_data import EVAL_SEED_OFFSET

    config_file = FINAL_CONFIGS["cpu_1d"][0]
    config = load_config_file(ROOT / config_file)
    spec = as_spec(config.data)
    samples = generate_samples(spec, config.seed + EVAL_SEED_OFFSET, range(config.eval_size))
    n = len(samples)
    distance = np.full((n, n), np.inf)  # [point set i, formula j]
    for i, s in enumerate(samples):
        for j, t in enumerate(samples):
            with np.errstate(all="ignore"):
                y = t.expression.evaluate(s.x)
            if np.all(np.isfinite(y)) and np.all(np.abs(y) < points.MAX_ABS_OUTPUT):
                y = points.normalize_outputs(y) if spec.normalize_y else y
                distance[i, j] = np.sqrt(np.mean((y - s.y) ** 2))
    linear_r2 = []
    for s in samples:
        design = np.c_[s.x, np.ones(len(s.y))]
        fit = design @ np.linalg.lstsq(design, s.y, rcond=None)[0]
        linear_r2.append(r2_score(s.y, fit, force_finite=False))
    rows = []
    for r in RESOLUTIONS:
        close = distance <= r
        rows.append({"resolution": r,
                     "top1_n2s": float(np.mean(1 / np.maximum(close.sum(axis=1), 1))),
                     "top1_s2n": float(np.mean(1 / np.maximum(close.sum(axis=0), 1))),
                     "top5_n2s": float(np.mean(np.minimum(5 / np.maximum(close.sum(axis=1), 1), 1)))})
    encoders = {name: functional_retrieval(f"runs/pretrain_{name}", samples, distance)
                for name, (file, _) in FINAL_CONFIGS.items()
                if file == config_file and (ROOT / "runs" / f"pretrain_{name}").exists()}
    record = {"command": "python results/pretrain/reproduce.py ceiling", "config_file": config_file,
              "pairs": n, "normalize_y": spec.normalize_y,
              "share_nearly_linear": float(np.mean(np.array(linear_r2) > 0.999)), "rows": rows,
              "encoders": encoders, "date": datetime.date.today().isoformat()}
    write_text(HERE / "ceiling.json", json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))


def functional_retrieval(workdir: str, samples: list, distance) -> dict:
    """Held-out retrieval of the encoder trained in `workdir` (its last checkpoint) on `samples`: strict top-1
    (the retrieved partner is the pair's own) and functional top-1 per resolution r (the retrieved formula is
    within r of the query's curve on the query's points: distance[point set, formula] <= r), with the
    functional top-1 of a random pick (the share of candidates within r)."""
    import numpy as np

    from snipjax import load, losses, models
    from snipjax.data.samples import as_spec, batch_of

    config, params = load(str(ROOT / workdir))
    batch = batch_of(samples, as_spec(config.data))
    out = models.make_snip(config).apply({"params": params}, batch["points"], batch["symbols"], batch["symbol_len"])
    z_n, z_s = (np.asarray(z) for z in losses.compared_latents(out["z_numeric"], out["z_symbolic"], config.loss.kind))
    similarity = z_n @ z_s.T  # [point set, formula]
    n2s, s2n = similarity.argmax(axis=1), similarity.argmax(axis=0)  # a formula per set, a set per formula
    pairs = np.arange(len(samples))
    rows = []
    for r in RESOLUTIONS:
        close = distance <= r
        rows.append({"resolution": r, "top1_n2s": float(np.mean(close[pairs, n2s])),
                     "top1_s2n": float(np.mean(close[s2n, pairs])),
                     "chance": float(np.mean(close))})
    step = max(int(d.name) for d in (ROOT / workdir / "checkpoints").iterdir() if d.name.isdigit())
    return {"workdir": workdir, "step": step,
            "top1_n2s": float(np.mean(n2s == pairs)), "top1_s2n": float(np.mean(s2n == pairs)), "rows": rows}


def ceiling_lines() -> list[str]:
    path = HERE / "ceiling.json"
    if not path.exists():
        return []
    c = json.loads(path.read_text())
    lines = ["## How high held-out top-1 can go on this data", "",
             f"`{c['command']}` ({c['date']}): the {c['pairs']} held-out pairs of `{c['config_file']}`. "
             f"{c['share_nearly_linear']:.0%} of them are nearly linear functions (a straight line fits their "
             "points with R² > 0.999)" + (", and min-max normalized outputs make every increasing line the same "
                                          "curve" if c["normalize_y"] else "") + ". Every formula is evaluated "
             "on every held-out point set; a perfect encoder that tells curves apart only when their RMS distance "
             "exceeds r guesses among the formulas closer than r, so its expected top-1 is:", "",
             "| resolution r (RMS, on the outputs' scale) | top-1 n→s | top-1 s→n | top-5 n→s |", "|---|---|---|---|"]
    lines += [f"| {row['resolution']:g} | {row['top1_n2s']:.3f} | {row['top1_s2n']:.3f} | {row['top5_n2s']:.3f} |"
              for row in c["rows"]]
    finest = c["rows"][0]
    lines += ["", f"Float tokens keep 4 significant digits, about {finest['resolution']:g} of the outputs' "
              f"range, so no encoder reaches more than {finest['top1_n2s']:.2f} / {finest['top1_s2n']:.2f} "
              "top-1 on this evaluation, however long it trains.", ""]
    if c.get("encoders"):
        names = list(c["encoders"])
        lines += ["### The trained encoders, scored up to equal curves", "",
                  "Functional top-1: a retrieval is right when the retrieved formula's curve lies within r (RMS) "
                  "of the query's on the query's points, whichever formula of the 256 it is. It counts every "
                  "strict hit (a pair's own formula is at distance 0) and the hits no encoder could tell from "
                  "one; a perfect encoder scores 1, and `random` is a random pick's expected score (the share "
                  "of candidates within r).", "",
                  "| resolution r | " + " | ".join(f"{n} n→s | {n} s→n" for n in names) + " | random |",
                  "|---|" + "---|---|" * len(names) + "---|"]
        lines.append("| strict (the pair's own) | " + " | ".join(
            f"{c['encoders'][n]['top1_n2s']:.3f} | {c['encoders'][n]['top1_s2n']:.3f}" for n in names) + " | 0.004 |")
        for i, row in enumerate(c["rows"]):
            cells = [c["encoders"][n]["rows"][i] for n in names]
            lines.append(f"| {row['resolution']:g} | " + " | ".join(
                f"{e['top1_n2s']:.3f} | {e['top1_s2n']:.3f}" for e in cells) + f" | {cells[0]['chance']:.3f} |")
        lines += ["", "Encoders: " + "; ".join(f"{n}: `{e['workdir']}` at step {e['step']}"
                                                for n, e in c["encoders"].items()) + ".", ""]
    return lines


def record_mantissa_embeddings(workdir: str) -> None:
    """How much a run with float-token inputs learned what its 10,000 mantissa embeddings stand for: the mean
    cosine of neighbouring mantissas' embeddings (N0000/N0001, ...) against random pairs, and the rank
    correlation between embedding distance and value distance over random pairs (0: none)."""
    import numpy as np

    from snipjax import checkpoint
    from snipjax.data.floats import token_meanings

    config, params = checkpoint.load_params(str(ROOT / workdir))
    table = np.asarray(params["numeric_encoder"]["embedder"]["embeddings"]["embedding"])
    mantissa = token_meanings()[1]
    rows = table[np.argsort(np.where(np.isnan(mantissa), np.inf, mantissa))[:10_000]]  # N0000 .. N9999
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 10_000, (2, 20_000))

    def ranks(v):
        return np.argsort(np.argsort(v))

    record = {"workdir": workdir, "step": int(config.total_steps),
              "neighbour_cosine": float(np.mean(np.sum(unit[:-1] * unit[1:], axis=1))),
              "random_pair_cosine": float(np.mean(np.sum(unit[a] * unit[b], axis=1))),
              "distance_rank_correlation": float(np.corrcoef(ranks(np.linalg.norm(rows[a] - rows[b], axis=1)),
                                                             ranks(np.abs(a - b)))[0, 1])}
    write_text(HERE / "mantissa_embeddings.json", json.dumps(record, indent=1) + "\n")



def plot_ablation(ablation: dict) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    for i, v in enumerate(ablation["variants"]):
        style = "-" if i < 10 else "--"
        frac = [r["step"] / v["steps"] for r in v["evals"]]
        mean_top1 = [(r["top1_n2s"] + r["top1_s2n"]) / 2 for r in v["evals"]]
        axes[0].plot(frac, mean_top1, "o" + style, ms=3, label=v["name"])
        axes[1].plot(frac, [r["loss"] for r in v["evals"]], "o" + style, ms=3)
        axes[2].plot([r["step"] / v["steps"] for r in v["train"]], [r["grad_norm"] for r in v["train"]], style)
    axes[0].axhline(1 / 256, color="gray", ls=":", label="chance (1/256)")
    axes[0].set(xlabel=f"fraction of the {ablation['minutes']:g}-minute budget",
                ylabel="held-out 256-way top-1 (mean of both directions)", title="Retrieval")
    axes[1].set(xlabel="fraction of the budget", ylabel="held-out 256-way loss", title="Held-out loss")
    axes[2].set(xlabel="fraction of the budget", ylabel="global gradient norm (before clipping)",
                title="Gradient norm", yscale="log")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=7)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    with atomic_write(HERE / "ablation.png", "wb") as png:
        fig.savefig(png, format="png", dpi=110)


def plot_final(finals: dict[str, dict], rows: dict[str, list[dict]]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(finals), figsize=(6 * len(finals), 4), squeeze=False)
    for ax, (name, summary) in zip(axes[0], finals.items()):
        evals = [r for r in rows[name] if r["split"] == "eval"]
        eval_size = summary["config"]["eval_size"]
        steps = [r["step"] for r in evals]
        for k, style in ((1, "-"), (5, ":")):
            ax.plot(steps, [r[f"top{k}_n2s"] for r in evals], "o" + style, color="C0", ms=3,
                    label=f"top-{k} numeric → symbolic")
            ax.plot(steps, [r[f"top{k}_s2n"] for r in evals], "s" + style, color="C1", ms=3,
                    label=f"top-{k} symbolic → numeric")
            ax.axhline(k / eval_size, color="gray", ls=style, label=f"top-{k} chance")
        ax.set(xlabel="step", ylabel=f"held-out {eval_size}-way accuracy", title=f"{name} ({summary['config_file']})",
               ylim=(0, None))
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(HERE / "curve.png", "wb") as png:
        fig.savefig(png, format="png", dpi=120)


def explain_official(ablation: dict) -> list[str]:
    """Why the official recipe learns as it does here, in the measured quantities of its run and the base's."""
    by_name = {v["name"].split(" (")[0].split(":")[0]: v for v in ablation["variants"]}
    official, base = by_name.get("official recipe"), by_name.get("base")
    if not (official and base):
        return []
    lr = official["train"][-1]["learning_rate"]
    first, last = official["evals"][0], official["evals"][-1]
    steps = official["steps"]
    return [
        "### Why the official recipe does not learn here",
        "",
        f"- Its learning rate rises linearly from 1e-7 to 4e-5 over 10,000 steps; after the {steps} steps of "
        f"this budget it is {lr:.2e}, {lr / 4e-5:.1%} of its peak. The held-out loss stays at "
        f"{last['loss']:.3f} (ln 256 = 5.545: no information), the latent norms hardly move "
        f"(|z| numeric {first['z_norm_n']:.2f} → {last['z_norm_n']:.2f}, symbolic {first['z_norm_s']:.2f} → "
        f"{last['z_norm_s']:.2f}) and the gradient norm is {official['train'][-1]['grad_norm']:.3f}, well under "
        "the clipping threshold 0.5: the schedule, not the loss, holds it back. At the paper's 240k steps the "
        "warmup is 4% of the run; on a CPU it is the whole run.",
        f"- With the same loss and model and AdamW at 2e-3 (base), the latents grow (|z| numeric "
        f"{base['evals'][0]['z_norm_n']:.2f} → {base['final']['z_norm_n']:.2f}, symbolic "
        f"{base['evals'][0]['z_norm_s']:.2f} → {base['final']['z_norm_s']:.2f}): raw dot products at τ = 1 can "
        "only sharpen their softmax by growing the latents, which the CLIP loss does with its learned scale "
        "instead (final scales {:.1f} to {:.1f} in the CLIP runs).".format(
            *(f(v["final"]["logit_scale"] for v in ablation["variants"] if v["overrides"].get("loss.kind") == "clip")
              for f in (min, max))),
    ]


def ablation_reading(ablation: dict) -> list[str]:
    """What the table says, in its own numbers: the held-out loss separates the variants where top-1 cannot."""
    loss = {v["name"]: v["final"]["loss"] for v in ablation["variants"]}
    base, values = "base: official loss and model, AdamW 2e-3 cosine", "+ points as value features"
    start = "+ points as value features, CLIP loss"
    if not {base, values, start} <= set(loss):
        return []
    best = min(loss, key=loss.get)
    worse = [f"{name.replace(start + ', ', '')} ({loss[name]:.3f})" for name in loss
             if name.startswith(start + ",") and loss[name] > loss[start] + 0.05]
    return ["### What the ablation shows", "",
            f"- Top-1 at 256-way moves within its noise here; the held-out loss separates more. Points as value "
            f"features are the one change that moves it well beyond the others: {loss[base]:.3f} → "
            f"{loss[values]:.3f} from the base (ln 256 = 5.545), where the CLIP loss alone or float tokens "
            "initialised from their values leave it at about 5.1.",
            f"- The lowest held-out loss is `{best}` ({loss[best]:.3f}).",
            f"- From points as value features with the CLIP loss ({loss[start]:.3f}), these are worse at equal "
            f"wall-clock: {'; '.join(worse)}. The others are within 0.05 of it (the SigLIP row's loss is another "
            "function and compares by its top-k only).", ""]


def explain_values(finals: dict[str, dict], rows: dict[str, list[dict]]) -> list[str]:
    """Why value features help, from the float-token run's mantissa embeddings and both final runs' evals."""
    path = HERE / "mantissa_embeddings.json"
    if not (path.exists() and "cpu_1d_tokens" in finals and "cpu_1d" in finals):
        return []
    m = json.loads(path.read_text())
    c = finals["cpu_1d_tokens"]["config"]
    seen = c["total_steps"] * c["batch_size"] * c["data"]["n_points"] * (c["data"]["max_dim"] + 1) / 10_000
    evals = {name: {r["step"]: r for r in rows[name] if r["split"] == "eval"} for name in ("cpu_1d_tokens", "cpu_1d")}
    common = sorted(set(evals["cpu_1d_tokens"]) & set(evals["cpu_1d"]))
    lines = ["### Why points as value features", "",
             f"- After {m['step']} steps of the float-token recipe ({finals['cpu_1d_tokens']['config_file']} with "
             "points as tokens), the embeddings of neighbouring mantissas (N0000 and N0001, ...) have a mean cosine "
             f"of {m['neighbour_cosine']:.3f} (random pairs: {m['random_pair_cosine']:.3f}), and the rank "
             "correlation between the distance of two mantissas' embeddings and the distance of their values is "
             f"{m['distance_rank_correlation']:.3f}: each of the 10,000 rows is seen about {seen:,.0f} times on "
             "average in such a run, and the encoder has barely learned that N5000 lies next to N5001. Value "
             "features give it that for free."]
    if common:
        table = ["", "| step | held-out loss, tokens / values | top-1 n→s, tokens / values "
                 "| top-1 s→n, tokens / values |", "|---|---|---|---|"]
        for step in [s for s in common if s % 1000 == 0 or s == common[-1]]:
            t, v = evals["cpu_1d_tokens"][step], evals["cpu_1d"][step]
            table.append(f"| {step} | {t['loss']:.3f} / {v['loss']:.3f} | {t['top1_n2s']:.3f} / {v['top1_n2s']:.3f} "
                         f"| {t['top1_s2n']:.3f} / {v['top1_s2n']:.3f} |")
        lines += ["- The two final runs at equal steps (the same data stream; their cosine schedules end at "
                  f"{finals['cpu_1d_tokens']['config']['total_steps']:,} and "
                  f"{finals['cpu_1d']['config']['total_steps']:,} steps):", *table]
    return lines + [""]


def _cells(r: dict) -> str:
    return " | ".join(f"{r[k]:.3f}" for k in ("top1_n2s", "top1_s2n", "top5_n2s", "top5_s2n"))


def report() -> None:
    lines = ["# Pretraining on a 2-core CPU: what makes a small SNIP learn", "",
             "Written by `reproduce.py` from the recorded runs (`ablation.json`, `final_*.json[l]`); "
             "`python results/pretrain/reproduce.py report` redraws it.", ""]
    if (HERE / "ablation.json").exists():
        ablation = json.loads((HERE / "ablation.json").read_text())
        plot_ablation(ablation)
        m = ablation["machine"]
        lines += [
            f"## Ablation: {ablation['minutes']:g} minutes per variant", "",
            f"- command: `python results/pretrain/reproduce.py ablation --minutes {ablation['minutes']:g}` "
            f"(each variant: `{ABLATION_BASE}` with the overrides in `ablation.json`)",
            f"- machine: {m['processor']}, {m['cpu_count']} cores, {m['platform']}, Python {m['python']}, "
            f"JAX {m['jax']}; date {ablation['date']}",
            "- held-out 256-way retrieval at the end of each run; `|z|` is the mean latent norm (numeric / "
            "symbolic), `scale` the logit scale, `grad` the global gradient norm of the last log window",
            "- the rows up to `+ points as value features` change one thing each from the base; the rows after it "
            "start from points as value features with the CLIP loss", "",
            "| variant | steps | samples/s | top-1 n→s | top-1 s→n | top-5 n→s | top-5 s→n | loss | |z| n / s "
            "| scale | grad |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in ablation["variants"]:
            f, last = v["final"], v["train"][-1]
            lines.append(f"| {v['name']} | {v['steps']} | {v['bench_samples_per_s']:.0f} | {_cells(f)} | "
                         f"{f['loss']:.3f} | {f['z_norm_n']:.2f} / {f['z_norm_s']:.2f} | {f['logit_scale']:.1f} | "
                         f"{last['grad_norm']:.2f} |")
        recorded = {v["name"] for v in ablation["variants"]}
        missing = [name for name in ABLATION if name not in recorded]
        top1 = [(v["final"]["top1_n2s"] + v["final"]["top1_s2n"]) / 2 for v in ablation["variants"]]
        p = max(top1)
        lines += ["", f"One 256-way evaluation resolves top-1 to about ±{(p * (1 - p) / 256) ** 0.5:.3f} (binomial "
                  f"standard error at {p:.3f}): differences smaller than that are noise."]
        if missing:
            lines += ["", "Not recorded yet (the ablation resumes with them): " + "; ".join(missing) + "."]
        lines += ["", "![ablation](ablation.png)", "", *ablation_reading(ablation), *explain_official(ablation), ""]
    finals = {n: json.loads((HERE / f"final_{n}.json").read_text()) for n in FINAL_CONFIGS
              if (HERE / f"final_{n}.json").exists()}
    if finals:
        final_rows = {n: read_jsonl(HERE / f"final_{n}.jsonl") for n in finals}
        plot_final(finals, final_rows)
        lines += ["## The CPU encoders", "",
                  "| run | command | wall | step | top-1 n→s | top-1 s→n | top-5 n→s | top-5 s→n |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, s in finals.items():
            for label, r in (("final", s["final_eval"]), ("best", s["best_eval"])):
                lines.append(f"| {name} ({label}) | `{s['command']}` | "
                             f"{s['wall_time_s'] / 60:.1f} min | {r['step']} | {_cells(r)} |")
        any_final = next(iter(finals.values()))
        m = any_final["machine"]
        lines += ["", f"Chance: top-1 1/256 = 0.004, top-5 5/256 = 0.020. Machine: {m['processor']}, "
                  f"{m['cpu_count']} cores, {m['platform']}, JAX {m['jax']}; date {any_final['date']}.", "",
                  "![curve](curve.png)", "", *explain_values(finals, final_rows)]
    lines += ceiling_lines()
    write_text(HERE / "README.md", "\n".join(lines))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    ablation = sub.add_parser("ablation", help="every variant for the same wall-clock minutes")
    ablation.add_argument("--minutes", type=float, default=3.0)
    final = sub.add_parser("final", help="train the CPU recipes")
    final.add_argument("names", nargs="*", default=["cpu_1d", "cpu_10d"], choices=list(FINAL_CONFIGS))
    sub.add_parser("ceiling", help="how high held-out top-1 can go on this data")
    sub.add_parser("report", help="README.md and the PNGs from the recorded runs")
    args = parser.parse_args(argv)
    if args.what == "ablation":
        run_ablation(args.minutes)
    elif args.what == "final":
        run_final(args.names)
    elif args.what == "ceiling":
        run_ceiling()
        report()
    else:
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
