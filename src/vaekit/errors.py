"""The one exception type for bad user input.

Anything the user can fix (a missing file, a wrong key, a bad value) raises `VaekitError` with a
one-line message naming the file, key or value and what is allowed. The CLI turns it into that
line on stderr and exit code 2; programming errors keep their tracebacks.
"""


class VaekitError(ValueError):
    """Bad input from the user: a one-line, actionable message."""


class TrainingInterrupted(Exception):
    """Training stopped cleanly on SIGINT or SIGTERM after finishing its current step.

    `message` says where it stopped and how to resume; `exit_code` is 128 + the signal number
    (130 for SIGINT, 143 for SIGTERM), as a shell reports a process the signal ended."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def check_regular_file(path, label: str = "", error: type[VaekitError] = VaekitError) -> None:
    """Refuse a folder, FIFO, socket or device where a file should be read: a FIFO blocks for ever,
    /dev/zero never ends. `label` prefixes the path in the message ("data", "config file"). A
    missing path passes: its reader reports it with its own words."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise error(f"cannot read {label + ' ' if label else ''}'{path}': {e.strerror}") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise error(f"{label + ' ' if label else ''}'{path}' is not a regular file ({what})")
