"""The one exception type for bad user input.

Anything the user can fix (a missing file, a wrong key, a bad value) raises `VaekitError` with a
one-line message naming the file, key or value and what is allowed. The CLI turns it into that
line on stderr and exit code 2; programming errors keep their tracebacks.
"""


class VaekitError(ValueError):
    """Bad input from the user: a one-line, actionable message."""
