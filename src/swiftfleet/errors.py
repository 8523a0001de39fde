"""The one exception type the CLI turns into a single clear line (and exit code 2)."""


class SwiftfleetError(Exception):
    """A problem the user can fix: bad input, a failed preflight, a missing tool."""
