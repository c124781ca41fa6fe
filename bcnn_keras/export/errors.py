"""The exporter's one error type: a bad input or a failed check, as one line."""


class ExportError(Exception):
    """A bad input or a failed check, as one line (the CLI prints it and exits with 2).

    `report` holds the report so far when the failure came after conversion (e.g. parity).

    Example:
        >>> str(ExportError("model.keras: no such file"))
        'model.keras: no such file'
    """

    def __init__(self, message, report=None):
        super().__init__(" ".join(str(message).split()))
        self.report = report
