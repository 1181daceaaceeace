"""Checkpoints on disk (orbax): a training run's state with its data position, and exported weights.

A training workdir holds `config.json` and `checkpoints/<step>/{state,data}`; an export dir holds `config.json`
and `params/` (the parameter pytree alone). `load_params` reads either.
"""

from __future__ import annotations

import json
import os
import signal

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

STATE, DATA = "state", "data"
CONFIG_FILE, CHECKPOINTS_DIR, PARAMS_DIR = "config.json", "checkpoints", "params"


class Checkpointer:
    """Saves and restores one training run: every `save_every` steps (asynchronously), keeping the last `keep`,
    and at the step where a SIGTERM (or Ctrl-C) asks the run to stop.

    Each checkpoint holds the train state and the data position (the producer's next step), so a resumed run
    sees exactly the samples an uninterrupted one would. Every process must call every method in the same
    order: saving is a collective.
    """

    def __init__(self, directory: str, save_every: int, keep: int):
        self._manager = ocp.CheckpointManager(
            os.path.abspath(directory),
            # A save function rather than save_interval_steps: the latter also saves the first step of a run.
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True,
                                                 should_save_fn=lambda step, _: step % save_every == 0))
        self._stop = False
        # With several processes JAX's preemption service catches SIGTERM and makes all hosts agree on the
        # step to stop at (see `stop_requested`); a Python handler would replace its own.
        self._previous_handlers = {}
        if jax.process_count() == 1:
            for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT: Ctrl-C saves and stops like a preemption
                self._previous_handlers[signum] = signal.signal(signum, self._on_stop_signal)

    def _on_stop_signal(self, signum, frame):
        self._stop = True
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once, without saving
            signal.signal(signal.SIGINT, self._previous_handlers[signal.SIGINT])

    def restore_or_init(self, abstract_state, init) -> tuple[dict, int]:
        """The latest checkpoint's (state, data step) laid out as `abstract_state` says, else (init(), 0)."""
        step = self._manager.latest_step()
        if step is None:
            return init(), 0
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                **{STATE: ocp.args.StandardRestore(abstract_state), DATA: ocp.args.JsonRestore()}))
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"checkpoint {self._manager.directory / str(step)} does not fit the train state this config "
                f"builds ({error}); resume with the config the run started with (its config.json), or use a "
                "new workdir") from error
        return restored[STATE], int(restored[DATA]["next_step"])

    def save(self, step: int, state, data_step: int, force: bool = False) -> bool:
        """Start saving if `step` is due (or `force`); returns whether a save started."""
        return self._manager.save(step, force=force, args=ocp.args.Composite(
            **{STATE: ocp.args.StandardSave(state), DATA: ocp.args.JsonSave({"next_step": data_step})}))

    def stop_requested(self, step: int) -> bool:
        """True at the step where the run should save and stop because of a SIGTERM (the same on all hosts)."""
        return self._stop or self._manager.reached_preemption(step)

    def close(self) -> None:
        """Wait for saves in flight, then let go of the directory and the SIGTERM handler."""
        self._manager.wait_until_finished()
        self._manager.close()
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)


def write_config(directory: str, config: ml_collections.ConfigDict) -> None:
    """`DIR/config.json`, written by process 0 only (every host holds the same config)."""
    if jax.process_index() == 0:
        path = epath.Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).write_text(config.to_json(indent=2))


def read_config(directory: str) -> ml_collections.ConfigDict:
    path = epath.Path(directory) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: a training workdir or an export dir holds its config.json")
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def export_params(directory: str, config: ml_collections.ConfigDict, params) -> None:
    """Write an export dir: `DIR/config.json` + `DIR/params/` (what `snipjax.load` reads). All processes call."""
    write_config(directory, config)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(epath.Path(directory).absolute() / PARAMS_DIR, params)
    checkpointer.wait_until_finished()


def _restore_as_numpy(directory: epath.Path, subtree: str | None = None, also: tuple[str, ...] = ()):
    """The pytree saved in `directory` (or its `subtree` alone, merged with the dicts under the keys of
    `also` that exist) as host numpy, whatever devices saved it."""
    handler = ocp.PyTreeCheckpointHandler()
    metadata = handler.metadata(directory).tree
    if subtree is not None:
        extra = [key for key in also if key in metadata]
        metadata = {key: metadata[key] for key in (subtree, *extra)}
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), metadata)
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    restored = handler.restore(directory, args=ocp.args.PyTreeRestore(
        target, restore_args=restore_args, partial_restore=subtree is not None))
    if subtree is None:
        return restored
    if len(metadata) == 1:
        return restored[subtree]
    return {k: v for key in metadata for k, v in restored[key].items()}


def load_params(path: str) -> tuple[ml_collections.ConfigDict, dict]:
    """(config, params as numpy) from an export dir or from a training workdir's latest checkpoint."""
    path = epath.Path(path).absolute()
    config = read_config(path)
    if (path / PARAMS_DIR).exists():
        return config, _restore_as_numpy(path / PARAMS_DIR)
    step = max(ocp.step.checkpoint_steps(path / CHECKPOINTS_DIR), default=None)
    if step is None:
        raise FileNotFoundError(f"{path} holds neither params/ (an export dir) nor a finished checkpoint under "
                                f"{CHECKPOINTS_DIR}/ (a training workdir)")
    # The params and the frozen ones (a frozen encoder), not the optimizer moments that would triple the read.
    return config, _restore_as_numpy(path / CHECKPOINTS_DIR / str(step) / STATE, subtree="params",
                                     also=("frozen",))
