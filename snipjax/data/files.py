"""Files a program writes: checked before the work starts, and complete or not there at all.

    check_output(path, "--out")            # before minutes of work: a missing folder or a directory says so now
    with atomic_write(path) as f:          # a temporary name beside `path`, moved into place on success;
        f.write(...)                       # an error (or a kill) leaves what was at `path` untouched
    with atomic_directory(path) as tmp:    # the same for a folder of files (an export dir)
        ...

The lowest layer that writes files, so every program above (the data CLI, the converter, the trainer, the
benchmark runners) uses these two and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def _default_mode(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def check_output(path, flag: str) -> None:
    """Raise a one-line error if a file cannot be written at `path` (its folder missing or not writable, or
    `path` a directory); `flag` names the argument in the message."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        problem = f"it is a directory; give a file name, such as {target / 'out'}"
    elif folder.exists() and not folder.is_dir():
        problem = f"{folder} is a file, not a folder"
    elif not folder.exists():
        problem = f"the folder {folder} does not exist (create it first)"
    elif not os.access(folder, os.W_OK):
        problem = f"the folder {folder} is not writable"
    else:
        return
    raise ValueError(f"cannot write {flag} {path}: {problem}")


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", **open_kwargs):
    """A file object for `path`'s new content: written under a temporary name in the same folder (so the
    rename cannot cross file systems), flushed to disk, then renamed over `path` when the block ends without
    an error. On an error the temporary file is removed and `path` keeps what it held."""
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        # mkstemp's 0600 is not what open() would have made: keep the file's permissions, or the umask's.
        os.chmod(temporary, target.stat().st_mode & 0o777 if target.exists() else _default_mode(0o666))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def atomic_directory(path):
    """A temporary folder beside `path` to fill, renamed to `path` (which must be absent or an empty folder)
    when the block ends without an error; on an error it is removed and `path` is left as it was."""
    target = Path(path)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield temporary
        os.chmod(temporary, _default_mode(0o777))  # mkdtemp's 0700 is not what mkdir would have made
        os.replace(temporary, target)  # POSIX rename replaces an empty directory
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def write_text(path, text: str) -> None:
    """`Path(path).write_text(text)`, atomically."""
    with atomic_write(path) as file:
        file.write(text)
