"""What the package's command lines share: every error is one line on stderr and exit code 2."""

import argparse
import logging
import os
import sys
import warnings

EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# An error line longer than this (a library's message) is cut, with '...' to show it.
MAX_ERROR_LENGTH = 1000
# The part of a library's exception that an error line quotes.
QUOTED_ERROR_LENGTH = 300


def cut(text, limit):
    """`text`, ending in '...' where it is longer than `limit` characters.

    Example:
        >>> cut("abcdefgh", 6)
        'abc...'
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_line(error, limit=QUOTED_ERROR_LENGTH):
    """The first non-empty line of an exception's message, cut to `limit` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return cut(lines[0] if lines else type(error).__name__, limit)


class OneLineParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one line, like every other error of the tools.

    Example:
        >>> parser = OneLineParser(prog="bcnn-train")
        >>> _ = parser.add_argument("--epochs", type=int)
        >>> parser.parse_args(["--epochs", "two"])
        Traceback (most recent call last):
        SystemExit: 2
    """

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")


def fail(message, status):
    """Prints `message` as one 'error:' line on stderr; returns the exit `status`."""
    print(f"error: {cut(' '.join(str(message).split()), MAX_ERROR_LENGTH)}", file=sys.stderr)
    return status


def quiet_libraries():
    """Keeps TensorFlow's, Keras' and larq's logs and warnings off stderr (errors stay one line)."""
    # Level 3: TensorFlow's import prints "E" lines (cuFFT/cuDNN registration) before any capture.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    warnings.simplefilter("ignore")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


class Progress:
    """A progress bar on the terminal: `progress(done, total)` redraws one line of stderr.

    It draws only when stderr is a terminal and `total` is over `threshold`, so logs and pipes
    get nothing. The stream is a copy of file descriptor 2 taken when it is made, so that it
    still reaches the terminal while the libraries' own stderr output is captured.

    Example:
        >>> progress = Progress("verifying")
        >>> progress(5, 100)  # draws nothing here: stderr is not a terminal
    """

    def __init__(self, label, threshold=10, width=30):
        self.label, self.threshold, self.width = label, threshold, width
        self.stream = os.fdopen(os.dup(2), "w") if os.isatty(2) else None

    def __call__(self, done, total):
        if self.stream is None or total <= self.threshold:
            return
        filled = self.width * done // total
        line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
        end = "\r" + " " * len(line) + "\r" if done >= total else ""
        self.stream.write("\r" + line + end)
        self.stream.flush()
