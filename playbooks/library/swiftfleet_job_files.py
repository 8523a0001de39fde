#!/usr/bin/python
"""Ansible module: a job's directory and rendered files on a node in one call (and the uploads' fan-out: rank 0's
staging server, the other nodes' copy from it)."""

DOCUMENTATION = r"""
module: swiftfleet_job_files
short_description: Write a swiftfleet job's directory and files on a node; optionally serve its uploads
description:
  - Creates the job directory (and a missing parent) owned by O(owner), then writes each of O(files) whose
    content, mode or owner differ (atomically: a rank never reads half a file), and reloads systemd when a unit
    file under /etc/systemd changed. One call per node instead of a template task per file.
  - With O(log_aside), a log left by an earlier run moves to <log>.<UTC time> (the new run appends to a new file).
  - With O(serve), starts rsync's daemon with that configuration as a transient unit running as O(owner), stopped
    by systemd when O(serve.until_unit) starts (the job's own unit) or after O(serve.max_seconds) at the latest; a
    unit of that name left by an earlier staging is stopped first.
  - With O(pull), copies rank 0's uploads into the job directory as O(owner) with rsync (resumable, checked by
    rsync), retrying while rank 0's server is not listening yet (it starts in the same step).
options:
  job_dir: {type: path, required: true, description: The job directory.}
  owner: {type: str, required: true, description: The job user; owns the directory and runs the staging server.}
  files:
    type: list
    elements: dict
    default: []
    description: The rendered files.
    suboptions:
      dest: {type: path, required: true, description: Where the file goes.}
      content: {type: str, required: true, no_log: true, description: Its content (job.env holds secrets).}
      mode: {type: str, required: true, description: Octal mode, as a string.}
      owner: {type: str, required: true, description: Its owner.}
  log_aside: {type: path, description: A log to keep aside under a time-stamped name before a new run.}
  serve:
    type: dict
    description: Start rank 0's staging server (rsync --daemon) with this configuration.
    suboptions:
      unit: {type: str, required: true, description: The transient unit's name.}
      config: {type: path, required: true, description: The rsyncd.conf (one of O(files)).}
      max_seconds: {type: int, required: true, description: systemd stops the server after this at the latest.}
      until_unit: {type: str, required: true, description: systemd stops the server when this unit starts.}
  pull:
    type: dict
    description: Copy the uploads from rank 0's staging server.
    suboptions:
      url: {type: str, required: true, description: "rsync://address:port/module/"}
      wait_seconds: {type: int, default: 30, description: How long to wait for the server to listen.}
"""

RETURN = r"""
written: {description: The files that were (re)written, type: list, elements: str, returned: always}
reloaded: {description: systemd reloaded its units, type: bool, returned: always}
log_kept: {description: Where the earlier log went, or an empty string, type: str, returned: always}
pulled: {description: rsync's itemized changes of the copy from rank 0 (empty without O(pull)), type: str, returned: always}
"""

import os
import pwd
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule


def _make_dir(path: str, uid: int, gid: int) -> bool:
    """The job directory, and its parent (<data dir>/jobs) when missing, owned by the job user."""
    made = False
    for d in (os.path.dirname(path), path):
        if not os.path.isdir(d):
            os.mkdir(d, 0o755)
            os.chown(d, uid, gid)
            made = True
    return made


def _write(f: dict) -> bool:
    user = pwd.getpwnam(f["owner"])
    mode = int(f["mode"], 8)
    data = f["content"].encode()
    try:
        st = os.stat(f["dest"])
        with open(f["dest"], "rb") as old:
            same = old.read() == data
        if same and st.st_uid == user.pw_uid and st.st_mode & 0o7777 == mode:
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(f["dest"]), prefix=".swiftfleet-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.chown(tmp, user.pw_uid, user.pw_gid)
        os.replace(tmp, f["dest"])
    except BaseException:
        os.unlink(tmp)
        raise
    return True


def _serve(module: AnsibleModule, serve: dict, owner: str) -> None:
    # A unit left by a staging that died (its play killed) holds the port: stop it. Not loaded: nothing to stop.
    module.run_command(["systemctl", "stop", serve["unit"]])
    module.run_command(["systemctl", "reset-failed", serve["unit"]])
    argv = [
        "systemd-run", "--unit", serve["unit"], "--collect", "--property", f"User={owner}",
        "--property", f"RuntimeMaxSec={serve['max_seconds']}", "--property", f"Conflicts={serve['until_unit']}",
        "rsync", "--daemon", "--no-detach", f"--config={serve['config']}",
    ]  # fmt: skip
    rc, out, err = module.run_command(argv)
    if rc != 0:
        module.fail_json(msg=f"could not start the staging server {serve['unit']}: {(err or out).strip()}")


# rsync's exit codes while rank 0's daemon is not listening yet: 10 (socket I/O), 35 (daemon connection timeout).
NOT_LISTENING = (10, 35)


def _pull(module: AnsibleModule, pull: dict, job_dir: str, user: pwd.struct_passwd) -> str:
    argv = [
        "rsync", "--archive", "--partial", "--mkpath", "--itemize-changes", "--timeout=120", pull["url"], f"{job_dir}/",
    ]  # fmt: skip
    deadline = time.monotonic() + pull["wait_seconds"]
    while True:
        # As the job user: it owns the job directory (uid, gid and no supplementary groups of root's).
        proc = subprocess.run(
            argv, user=user.pw_uid, group=user.pw_gid, extra_groups=[], capture_output=True, text=True, check=False
        )  # fmt: skip
        if proc.returncode not in NOT_LISTENING or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if proc.returncode != 0:
        module.fail_json(
            msg=f"could not copy the uploads from {pull['url']} (rsync exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-500:]}"
        )
    return proc.stdout


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "job_dir": {"type": "path", "required": True},
            "owner": {"type": "str", "required": True},
            "files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "dest": {"type": "path", "required": True},
                    "content": {"type": "str", "required": True, "no_log": True},
                    "mode": {"type": "str", "required": True},
                    "owner": {"type": "str", "required": True},
                },
            },
            "log_aside": {"type": "path"},
            "serve": {
                "type": "dict",
                "options": {
                    "unit": {"type": "str", "required": True},
                    "config": {"type": "path", "required": True},
                    "max_seconds": {"type": "int", "required": True},
                    "until_unit": {"type": "str", "required": True},
                },
            },
            "pull": {
                "type": "dict",
                "options": {
                    "url": {"type": "str", "required": True},
                    "wait_seconds": {"type": "int", "default": 30},
                },
            },
        },
        supports_check_mode=False,
    )
    p = module.params
    try:
        user = pwd.getpwnam(p["owner"])
    except KeyError:
        module.fail_json(msg=f"the job user {p['owner']} does not exist on this node")
    changed = _make_dir(p["job_dir"], user.pw_uid, user.pw_gid)
    written = [f["dest"] for f in p["files"] if _write(f)]
    reloaded = any(d.startswith("/etc/systemd/") for d in written)
    if reloaded:
        module.run_command(["systemctl", "daemon-reload"], check_rc=True)
    log_kept = ""
    if p["log_aside"] and os.path.exists(p["log_aside"]):
        log_kept = f"{p['log_aside']}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        os.replace(p["log_aside"], log_kept)
    if p["serve"]:
        _serve(module, p["serve"], p["owner"])
    pulled = _pull(module, p["pull"], p["job_dir"], user) if p["pull"] else ""
    changed = changed or bool(written) or bool(log_kept) or bool(p["serve"]) or bool(pulled)
    module.exit_json(changed=changed, written=written, reloaded=reloaded, log_kept=log_kept, pulled=pulled)


if __name__ == "__main__":
    main()
