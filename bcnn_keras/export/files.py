"""Output files that appear only when the whole export succeeded (written, then renamed)."""

import contextlib
import os
import tempfile

from bcnn_keras.export.errors import ExportError


def check_directory(path, what):
    """Returns the directory `path` goes into; raises `ExportError` if it cannot hold `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ExportError(f"{what} {path} is a directory")
    if not os.path.isdir(directory):
        raise ExportError(f"{what} directory {directory} does not exist")
    return directory


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path, what="output"):
    """Yields a temporary path next to `path`; renames it to `path` if the block succeeds.

    On failure the temporary file is removed, and so is any older file at `path`: a stale model
    must never be mistaken for the result of this run.

    Example:
        >>> with atomic_output("model.tflite") as temporary:
        ...     with open(temporary, "wb") as file:
        ...         _ = file.write(b"TFL3")
    """
    directory = check_directory(path, what)
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    except OSError as error:
        raise ExportError(f"cannot write to {what} directory {directory}: {error.strerror}") from error
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; the output should not be
        os.replace(temporary, path)
    except BaseException:
        if os.path.isfile(path):
            os.remove(path)
        raise
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
