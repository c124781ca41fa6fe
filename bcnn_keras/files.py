"""Files that are whole or absent: written under a temporary name in the same folder, then
renamed over the target (a rename within one file system is atomic).

A killed process leaves at most a `.NAME.XXXX.partial.EXT` file behind (`PARTIAL_FILE`), never a
half-written `NAME.EXT`. Training, export, plots and benchmarks all write through here.
"""

import contextlib
import json
import os
import re
import tempfile

# What an interrupted `atomic_write` leaves behind.
PARTIAL_FILE = re.compile(r"\..+\.partial(\.[^.]+)?")


def _read_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: setting the umask to read it is process-wide, and files that other
# threads create meanwhile would get no umask at all.
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_write(path):
    """Yields a temporary path next to `path` (same extension, for writers that need it); renames
    it to `path` when the block succeeds. On failure the temporary file goes, and `path` keeps
    its old content.

    Example:
        >>> with atomic_write("history.json") as temporary:
        ...     with open(temporary, "w") as stream:
        ...         _ = stream.write("[]")
        >>> open("history.json").read()
        '[]'
    """
    directory, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{name}.", suffix=".partial" + os.path.splitext(name)[1]
    )
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes it private; the result should not be
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(path, value, indent=2):
    """Writes `value` as JSON to `path`, atomically.

    Example:
        >>> write_json("config.json", {"epochs": 3})
        >>> read_json("config.json")
        {'epochs': 3}
    """
    with atomic_write(path) as temporary:
        with open(temporary, "w") as stream:
            json.dump(value, stream, indent=indent)
            stream.write("\n")


def read_json(path, default=None):
    """The JSON value in `path`; `default` when the file does not exist.

    Example:
        >>> read_json("no-such-history.json", default=[])
        []
    """
    if default is not None and not os.path.exists(path):
        return default
    with open(path) as stream:
        return json.load(stream)


def remove_partial_files(directory):
    """Deletes the temporary files of writes that a killed process left unfinished."""
    for folder, _, names in os.walk(directory):
        for name in names:
            if PARTIAL_FILE.fullmatch(name):
                os.remove(os.path.join(folder, name))
