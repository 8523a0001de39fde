"""One lock per cluster around every command that changes it: `cluster up|down` and the playbooks that set up
nodes or start jobs (setup, train, export, deploy, eval).

A lock is a small JSON file naming its holder: a process (pid and its start time, so a reused pid is not taken
for the holder), the user and host, the command, and since when. It is held for as long as that process lives,
however it ends: a crashed or killed holder leaves a file whose process is gone, and the next command takes it
over. Checking and taking happen under flock on a guard file, so two commands that start together cannot both
win. A playbook holds the lock for its ansible-playbook process: the filter that takes it runs in a worker
forked from that process (swiftfleet.filters.lock).
"""

import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from swiftfleet import paths
from swiftfleet.errors import SwiftfleetError


class Holder(BaseModel):
    pid: int
    pid_started: str  # field 22 of /proc/<pid>/stat: tells a live holder from a new process with its pid
    user: str
    host: str
    command: str
    since: datetime


def lock_file(cluster: str) -> Path:
    """Beside the clusters' state, not in it: `cluster down` removes that directory while it holds the lock."""
    return paths.state_dir() / ".locks" / f"{cluster}.json"


def _started(pid: int) -> str | None:
    """The start time of a live process (clock ticks since boot), None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # the command name in (...) may hold spaces


def _holder(path: Path) -> Holder | None:
    """The live holder named in the file; None when there is none, it has ended, or the file is unreadable."""
    try:
        holder = Holder.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None
    if holder.host == socket.gethostname() and _started(holder.pid) != holder.pid_started:
        return None
    return holder


@contextmanager
def _guarded(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_suffix(".guard"), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        yield


def busy_line(cluster: str, holder: Holder) -> str:
    minutes = int((datetime.now(UTC) - holder.since).total_seconds() // 60)
    return (
        f"cluster {cluster!r} is busy: `{holder.command}` by {holder.user}@{holder.host} (pid {holder.pid}) "
        f"since {holder.since:%Y-%m-%d %H:%M:%S} UTC ({minutes} min ago); try again when it has finished"
    )


def holder(cluster: str) -> Holder | None:
    return _holder(lock_file(cluster))


def operator() -> str:
    """Who runs this command, as locks and job directories (started-by) name them: user@host."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def acquire(cluster: str, command: str, pid: int | None = None) -> None:
    """Take the cluster's lock for process `pid` (default: this one), or raise with the holder's one line.
    Taking it again for the same process is a no-op, so a playbook may ask more than once."""
    pid = pid or os.getpid()
    path = lock_file(cluster)
    with _guarded(path):
        current = _holder(path)
        if current is not None:
            if current.pid == pid and current.host == socket.gethostname():
                return
            raise SwiftfleetError(busy_line(cluster, current))
        started = _started(pid)
        if started is None:
            raise SwiftfleetError(f"lock for cluster {cluster!r}: no process {pid} to hold it")
        mine = Holder(
            pid=pid, pid_started=started, user=getpass.getuser(), host=socket.gethostname(),
            command=command, since=datetime.now(UTC).replace(microsecond=0),
        )  # fmt: skip
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(mine.model_dump(mode="json")) + "\n")
        tmp.replace(path)


def release(cluster: str, pid: int | None = None) -> None:
    """Give the lock back if process `pid` (default: this one) holds it."""
    pid = pid or os.getpid()
    path = lock_file(cluster)
    with _guarded(path):
        current = _holder(path)
        if current is not None and current.pid == pid and current.host == socket.gethostname():
            path.unlink(missing_ok=True)


@contextmanager
def held(cluster: str, command: str) -> Iterator[None]:
    """The lock for the duration of a command of this process."""
    acquire(cluster, command)
    try:
        yield
    finally:
        release(cluster)
