"""Output files that appear only when the whole export succeeded (written, then renamed)."""

import contextlib
import os

from bcnn_keras.export.errors import ExportError
from bcnn_keras.files import atomic_write

TFLITE_IDENTIFIER = b"TFL3"  # bytes 4..8 of every TFLite flatbuffer


def check_directory(path, what):
    """Returns the directory `path` goes into; raises `ExportError` if it cannot hold `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ExportError(f"{what} {path} is a directory")
    if not os.path.isdir(directory):
        raise ExportError(f"{what} directory {directory} does not exist")
    return directory


@contextlib.contextmanager
def atomic_output(path, what="output"):
    """`bcnn_keras.files.atomic_write` for the exporter's outputs: the directory is checked
    first, and a failure to create the temporary file is an `ExportError`. On failure an older
    file at `path` stays as it was: the caller's error says so.

    Example:
        >>> with atomic_output("model.tflite") as temporary:
        ...     with open(temporary, "wb") as file:
        ...         _ = file.write(b"TFL3")
    """
    directory = check_directory(path, what)
    writer = atomic_write(path)
    try:
        temporary = writer.__enter__()
    except OSError as error:
        raise ExportError(f"cannot write to {what} directory {directory}: {error.strerror}") from error
    with contextlib.ExitStack() as stack:
        stack.push(writer)  # renames on success, cleans up on failure
        yield temporary
