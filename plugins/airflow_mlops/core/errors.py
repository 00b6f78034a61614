"""Exceptions the core raises for situations that are not failures of the data or code."""


class NothingToProcessError(LookupError):
    """There is nothing for this stage to do yet (no data landed, no champion to monitor).

    Operators turn it into a skip: a calendar run on a fresh deployment is not an error.

    :param note: the short form for the DAG run's note (``core.model.outcome.skipped``), when
        the message itself is longer than a note line should be.
    """

    def __init__(self, message: str, note: str | None = None) -> None:
        super().__init__(message)
        self.note = note
