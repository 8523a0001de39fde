"""A text file on the controller, replaced whole (the action swiftfleet_controller_file): a reader never sees half
of it, and it has its mode from the first byte."""

import os
import tempfile
from pathlib import Path


def write(path: str, content: str, mode: int) -> bool:
    """Write content to path with mode, atomically; False when the file already held exactly that."""
    dest = Path(path)
    try:
        if dest.read_text() == content and (dest.stat().st_mode & 0o7777) == mode:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as out:
            out.write(content)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
