"""Exceptions the core raises for situations that are not failures of the data or code."""


class NothingToProcessError(LookupError):
    """There is nothing for this stage to do yet (no data landed, no champion to monitor).

    Operators turn it into a skip: a calendar run on a fresh deployment is not an error.
    """
