"""Checkpoints on disk (orbax): a training run's state with its data position, and exported weights.

A training workdir holds `config.json` and `checkpoints/<step>/{state,data}`; an export dir holds `config.json`
and `params/` (the parameter pytree alone). `load_params` reads either.
"""

from __future__ import annotations

import json
import logging as std_logging
import os
import pathlib
import re
import signal
import sys

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from snipjax.config import one_line
from snipjax.data.files import write_text

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
        """The latest good checkpoint's (state, data step) laid out as `abstract_state` says, else (init(), 0).

        A damaged checkpoint (a truncated file, a save cut short) is moved aside to `<step>.damaged` with a
        warning naming its file, and the step before it is tried: an interrupted save never blocks a resume.
        """
        for step in sorted(self._manager.all_steps(), reverse=True):
            directory = epath.Path(self._manager.directory) / str(step)
            try:
                restored = self._manager.restore(step, args=ocp.args.Composite(
                    **{STATE: ocp.args.StandardRestore(abstract_state), DATA: ocp.args.JsonRestore()}))
                return restored[STATE], int(restored[DATA]["next_step"])
            except Exception as error:  # orbax and tensorstore raise many kinds; which one is decided below
                _silence_failed_reads()
                damage = _damage(directory, error)
                if damage is None:  # the files read fine as saved: they hold another model's state
                    raise ValueError(
                        f"checkpoint {directory} does not fit the train state this config builds "
                        f"({one_line(error)}); resume with the config the run started with (its config.json), "
                        "or use a new workdir") from None
            aside = _set_aside(directory)
            logging.warning("checkpoint step %d is damaged (%s); moved it to %s and resuming from the step "
                            "before", step, damage, aside)
            self._manager.reload()
        return init(), 0

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


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as saved: the message names the step directory and the file."""


STEP_ITEMS = {STATE: "pytree", DATA: "json"}  # what a training checkpoint's step directory holds
# Files orbax writes as JSON; their decoding errors do not say which file failed, so each is tried.
JSON_FILES = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding", "metadata")


def _damage(directory: epath.Path, error: BaseException | None = None, items: dict[str, str] = STEP_ITEMS
            ) -> str | None:
    """What is wrong with a checkpoint directory ('state/_METADATA: unreadable ...'), or None if its items
    (name → 'pytree' | 'json'; '.' is the directory itself) read back as saved. `error` is the failure that
    raised the question: tensorstore quotes the file it could not read, so that file is named first."""
    if error is not None:
        text = _without_spec(str(error))
        for quoted in reversed(re.findall(r'"(/[^"]+)"', text)):
            if quoted.startswith(str(directory)) and os.path.exists(quoted):
                where = os.path.relpath(quoted, directory) + ("/" if os.path.isdir(quoted) else "")
                array = re.search(r'Error reading "([^"]+)" in OCDBT', text)  # the entry of an OCDBT database
                return f"{where}{f', array {array.group(1)}' if array else ''}: {_reason(error)}"
    for item in items:
        if not (directory / item).exists():
            return f"{item}/ is missing (a save cut short)"
    for path in sorted(pathlib.Path(directory).rglob("*")):
        if path.is_file() and (path.name in JSON_FILES or path.parent.name == "array_metadatas"):
            try:
                json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError) as json_error:
                return f"{path.relative_to(directory)}: unreadable, truncated or overwritten ({json_error})"
    try:
        for item, kind in items.items():
            if kind == "pytree":
                _restore_as_numpy(directory / item)
            else:
                ocp.JsonCheckpointHandler().restore(directory / item)
    except Exception as read_error:  # noqa: BLE001 - any failure to read the files as saved is damage
        return _damage(directory, read_error, {}) or f"unreadable: {_reason(read_error)}"
    return None


def _without_spec(text: str) -> str:
    """An error message without the TensorStore spec (a page of JSON) that orbax and tensorstore append."""
    return re.split(r"\s*\[?'?tensorstore_spec=| See full TensorStore details", text)[0]


def _reason(error: BaseException) -> str:
    """The gist of a tensorstore or orbax error: its status and last clause (`OUT_OF_RANGE: Requested byte
    range [0, 253) is not valid for value of size 10`), without the spec it dumps."""
    text = _without_spec(one_line(error))
    status = re.match(r"[A-Z_]{4,}: ", text)
    last = text.rsplit('": ', 1)[-1]
    return f"{status.group(0) if status and not last.startswith(status.group(0)) else ''}{last}"[-300:]


def _silence_failed_reads() -> None:
    """After a failed read, orbax's reads still in flight finish on a closed event loop, each printing a
    traceback through sys.unraisablehook (dozens of 'Event loop is closed'), some after the error is
    handled: drop those from orbax's coroutines and closed loops, pass anything else on."""
    previous = sys.unraisablehook
    if getattr(previous, "snipjax_filter", False):
        return

    def hook(unraisable):
        code = getattr(unraisable.object, "cr_code", None)
        closed_loop = isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(
            unraisable.exc_value)
        if not (closed_loop or (code is not None and "orbax" in code.co_filename)):
            previous(unraisable)

    hook.snipjax_filter = True
    sys.unraisablehook = hook
    # ... and asyncio logs each of their exceptions again as "Task exception was never retrieved".
    std_logging.getLogger("asyncio").addFilter(lambda record: "orbax" not in record.getMessage())


def _set_aside(directory: epath.Path) -> epath.Path:
    """Rename a damaged step directory so that no resume or load reads it again (it is kept, not deleted)."""
    aside = directory.parent / f"{directory.name}.damaged"
    count = 1
    while aside.exists():
        count += 1
        aside = directory.parent / f"{directory.name}.damaged{count}"
    if jax.process_index() == 0:
        directory.rename(aside)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"set aside {directory}")
    return aside


def write_config(directory: str, config: ml_collections.ConfigDict) -> None:
    """`DIR/config.json`, written by process 0 only (every host holds the same config), atomically."""
    if jax.process_index() == 0:
        path = epath.Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        write_text(path / CONFIG_FILE, config.to_json(indent=2))


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
    if str(path).endswith((".pth", ".pt")) and os.path.isfile(path):
        raise ValueError(f"{path} is a PyTorch checkpoint: convert it once with `python -m snipjax.convert "
                         f"--torch {path} --out DIR`, then load DIR")
    path = epath.Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; snipjax loads a folder: a training workdir or an export dir")
    config = read_config(path)
    if (path / PARAMS_DIR).exists():
        return config, _read(path / PARAMS_DIR, path / PARAMS_DIR, {".": "pytree"})
    steps = sorted(ocp.step.checkpoint_steps(path / CHECKPOINTS_DIR), reverse=True)
    if not steps:
        raise FileNotFoundError(f"{path} holds neither params/ (an export dir) nor a finished checkpoint under "
                                f"{CHECKPOINTS_DIR}/ (a training workdir)")
    # The params and the frozen ones (a frozen encoder), not the optimizer moments that would triple the read.
    step_dir = path / CHECKPOINTS_DIR / str(steps[0])
    older = (f"; the step before, {steps[1]}, may be intact: rerun the training command to resume from it "
             f"(it sets this one aside)") if len(steps) > 1 else ""
    return config, _read(step_dir, step_dir / STATE, {STATE: "pytree"}, older, subtree="params",
                         also=("frozen",))


def _read(directory: epath.Path, tree: epath.Path, items: dict[str, str], advice: str = "", **kwargs):
    """`_restore_as_numpy(tree, **kwargs)`; a failure raises a CheckpointError naming `directory`'s damaged
    file (`items` as `_damage` takes them)."""
    try:
        return _restore_as_numpy(tree, **kwargs)
    except Exception as error:  # orbax and tensorstore raise many kinds: here each means a damaged file
        _silence_failed_reads()
        damage = _damage(directory, error, items) or f"unreadable: {_reason(error)}"
        raise CheckpointError(f"{directory} is damaged ({damage}){advice}") from None
