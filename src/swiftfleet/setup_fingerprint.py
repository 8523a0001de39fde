"""What a node's setup depends on, as one hash: setup.yml skips every role on a re-run whose inputs are the ones
the node was last set up with (and whose installed stack has not drifted: playbooks/files/setup_current.py).

The inputs: every file of the roles setup.yml applies (their tasks, defaults, vars, templates, files), setup.yml,
the kit's filters and compatibility table (they choose versions and builds), the node-side check itself, and the
host's variables that those roles read (`swiftfleet_*` and each role's prefix) from the inventory and `-e`.
Facts are not inputs: what setup chose from them (driver, toolkit, versions) is checked on the node instead.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from swiftfleet import paths

PACKAGE = Path(__file__).resolve().parent
# Besides the roles: the files whose content changes what a setup does.
KIT_FILES = (
    paths.playbooks_dir() / "setup.yml",
    paths.playbooks_dir() / "files" / "setup_current.py",
    paths.REPO_ROOT / "filter_plugins" / "swiftfleet.py",
    PACKAGE / "filters.py",
    PACKAGE / "stack.py",
    PACKAGE / "wheel_cache.py",  # the wheel_cache role's keys and plan (filters.py)
    PACKAGE / "data" / "stack.yml",
)
SKIPPED_DIRS = {"molecule", "__pycache__"}  # tests and caches of a role change nothing on a node
LOGIN_VARS = {"ansible_user", "ansible_become_user"}  # the roles' job user defaults to the login user
# Inventory variables that name the cluster rather than shape a node: setup.yml reads swiftfleet_cluster only for
# the controller's lock and record file, and swiftfleet_deploy_port is read by the job plays alone. Any variable a
# role reads (swiftfleet_provider picks the CA files, idle stop, spot, shared file system) stays an input.
IDENTITY_VARS = {"swiftfleet_cluster", "swiftfleet_deploy_port"}


def role_files(role: str) -> list[Path]:
    root = paths.REPO_ROOT / "roles" / role
    if not root.is_dir():
        raise ValueError(f"setup fingerprint: no role {role!r} under {root.parent}")
    return sorted(
        p for p in root.rglob("*") if p.is_file() and not SKIPPED_DIRS.intersection(p.relative_to(root).parts)
    )


@cache
def files_digest(roles: tuple[str, ...]) -> str:
    """One hash of the kit's files a setup with these roles runs (names and contents)."""
    digest = hashlib.sha256()
    files = [f for role in roles for f in role_files(role)] + list(KIT_FILES)
    for path in files:
        digest.update(str(path.relative_to(paths.REPO_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ValueError(f"setup fingerprint: cannot read {path} ({exc.strerror})") from None


def fingerprint(
    host_vars: Mapping[str, Any], roles: Iterable[str], controller_files: Iterable[str] = ()
) -> str:
    """The hash of the kit's files, of this host's variables that the roles read (plus the login user, whom the
    job user defaults to) and of the contents of controller files the roles copy to the node (CA certificates)."""
    roles = tuple(roles)
    prefixes = tuple(f"{name}_" for name in ("swiftfleet", *roles))
    chosen = {
        k: host_vars[k]
        for k in sorted(host_vars)
        if (k.startswith(prefixes) or k in LOGIN_VARS) and k not in IDENTITY_VARS
    }
    copied = {f: _file_digest(f) for f in sorted(map(str, controller_files))}
    text = json.dumps({"vars": chosen, "files": copied}, sort_keys=True, default=str)
    return hashlib.sha256(f"{files_digest(roles)}\0{text}".encode()).hexdigest()
