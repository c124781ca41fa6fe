"""What the package's command lines share: every error is one line on stderr and exit code 2."""

import argparse

EXIT_BAD_INPUT = 2


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
