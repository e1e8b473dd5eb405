"""Exceptions a task may raise to steer what happens to its message."""


class Reject(Exception):
    """Raise from a task to dead-letter the message now, without further attempts.

    For input the task knows it will never accept (a retry cannot help).
    """
