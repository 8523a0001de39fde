#!/usr/bin/python
"""Ansible module: one look at a job unit and its log, read for up to `wait` seconds while the unit runs."""

DOCUMENTATION = r"""
module: swiftfleet_unit_watch
short_description: State of a swiftfleet job unit and the new progress lines of its log
description:
  - Reads the unit's state with C(systemctl show) and the log from byte O(offset) on. With O(wait), keeps
    reading for O(wait) seconds, or less when the unit stops; so a playbook's watch makes one round per O(wait)
    seconds however often the job logs (its rounds are limited), and never reads the whole log again.
  - Only whole lines are read (tqdm's carriage returns count as line ends); RV(offset) is where the next call
    starts. A log shorter than O(offset) (rotated, truncated) is read from its start.
options:
  unit: {type: str, required: true, description: The systemd unit.}
  log: {type: path, required: true, description: The unit's log file (it need not exist yet).}
  offset: {type: int, default: 0, description: Byte offset to read from; -1 reads only the last 64 KiB.}
  wait: {type: float, default: 0, description: Seconds to keep reading, unless the unit ends sooner.}
  pattern:
    type: str
    default: "^\\{'(loss|eval_loss|train_runtime)'"
    description: Regular expression of a progress line (ms-swift prints a Python dict per logging step).
  tail: {type: int, default: 0, description: Also return the log's last N lines (for failure reports, logs).}
  checkpoints:
    type: path
    description:
      - An output directory whose checkpoint-N directories (at any depth) and C(last-checkpoint) links to list,
        after the look (so a unit seen ended has written all of them). Symbolic links inside are left out.
      - The look ends early when a C(last-checkpoint) link differs from O(known_links): a checkpoint just became
        complete, and the watch copies it without waiting for the rest of the round.
  known_links: {type: dict, default: {}, description: The RV(last_checkpoints) of the previous look.}
  count: {type: path, description: "A data-parallel job's progress file: answers whose complete non-blank lines to count, or with O(count_batch) ms-swift sample's state."}
  count_batch: {type: int, default: 0, description: "Rows per batch: O(count) is ms-swift sample's ckpt_state.json, whose index is the last batch done."}
"""

RETURN = r"""
state: {description: "ActiveState (active, inactive, failed, ...); not-installed without the unit file", type: str, returned: always}
result: {description: "systemd's Result: success, exit-code, signal, ...", type: str, returned: always}
exit_status: {description: ExecMainStatus (exit code or signal number), type: int, returned: always}
exited_at: {description: Unix time the main process ended (0 while running), type: int, returned: always}
loaded: {description: The unit file is installed on the node, type: bool, returned: always}
running: {description: The unit is active, activating or reloading, type: bool, returned: always}
progress: {description: "New progress lines since offset, as `step N/M  loss X  ...`", type: list, elements: str, returned: always}
last_line: {description: The last non-empty line read (new or, with offset -1, recent), type: str, returned: always}
latest: {description: The last progress line read, else the last line, type: str, returned: always}
offset: {description: Where the next call should read from, type: int, returned: always}
tail: {description: The last O(tail) lines of the log, type: list, elements: str, returned: always}
checkpoints:
  description: "With O(checkpoints): each checkpoint-N directory, relative to it, and its regular files as
    [path relative to the checkpoint, size, mtime]"
  type: list
  elements: dict
  returned: always
counted: {description: "The rows done by O(count), after the look (0 without the file)", type: int, returned: always}
last_checkpoints:
  description: "With O(checkpoints): run directory (relative) -> the checkpoint its last-checkpoint link names"
  type: dict
  returned: always
"""

import ast
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

PROPERTIES = ("ActiveState", "Result", "ExecMainStatus", "ExecMainExitTimestamp", "LoadState")
RUNNING = ("active", "activating", "reloading", "deactivating")
RECENT = 65536
PROGRESS_PATTERN = r"^\{'(loss|eval_loss|train_runtime)'"
CHECKPOINT_DIR = re.compile(r"^checkpoint-\d+$")
LAST_LINK = "last-checkpoint"  # ms-swift's link to the newest checkpoint every rank has finished writing


def unit_state(module, unit):
    argv = ["systemctl", "show", "--timestamp=unix", *(f"--property={p}" for p in PROPERTIES), unit]
    rc, out, err = module.run_command(argv)
    if rc != 0:
        module.fail_json(msg=f"systemctl show {unit}: {err.strip() or out.strip()}")
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    stamp = props.get("ExecMainExitTimestamp", "")
    loaded = props.get("LoadState", "") == "loaded"
    return {
        "state": props.get("ActiveState", "unknown") if loaded else "not-installed",
        "loaded": loaded,
        "result": props.get("Result", ""),
        "exit_status": int(props.get("ExecMainStatus") or 0),
        "exited_at": int(stamp[1:]) if stamp.startswith("@") else 0,
    }


def read_lines(path, offset):
    """Whole lines from offset on, and the offset after the last one."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return [], 0
    if offset < 0:
        offset = max(size - RECENT, 0)
    elif offset > size:
        offset = 0
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    text = data[:end].decode("utf-8", errors="replace")
    return [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()], offset + end


def summarize(line):
    """`step 5/20  loss 5.84  ...` from ms-swift's printed dict; other lines unchanged."""
    try:
        values = ast.literal_eval(line)
    except (ValueError, SyntaxError):
        return line
    if not isinstance(values, dict):
        return line
    step = values.pop("global_step/max_steps", None)
    return "  ".join(([f"step {step}"] if step else []) + [f"{k} {v}" for k, v in values.items()])


def last_lines(path, count):
    try:
        with open(path, "rb") as f:
            f.seek(max(os.path.getsize(path) - RECENT, 0))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()][-count:]


def last_links(root):
    """Run directory (relative to root) -> the checkpoint its last-checkpoint link names."""
    links = {}
    for top, dirs, _ in os.walk(root):
        dirs[:] = [d for d in dirs if not CHECKPOINT_DIR.match(d)]
        link = os.path.join(top, LAST_LINK)
        if os.path.islink(link):
            links[os.path.relpath(top, root)] = os.path.basename(os.readlink(link))
    return links


def list_checkpoints(root):
    """The checkpoint-N directories under root with their files, and the last-checkpoint links' targets (read
    first: a checkpoint a link names is then listed whole)."""
    found, links = [], last_links(root)
    for top, dirs, _ in os.walk(root):
        rel_top = os.path.relpath(top, root)
        for name in [d for d in dirs if CHECKPOINT_DIR.match(d)]:
            dirs.remove(name)  # a checkpoint's own subdirectories are listed as its files
            ckpt = os.path.join(top, name)
            files = []
            for sub, _, names in os.walk(ckpt):
                for fname in names:
                    path = os.path.join(sub, fname)
                    try:
                        st = os.lstat(path)
                    except OSError:  # removed meanwhile (save_total_limit rotation)
                        continue
                    if not os.path.islink(path):
                        files.append([os.path.relpath(path, ckpt), st.st_size, st.st_mtime])
            found.append({"path": os.path.normpath(os.path.join(rel_top, name)), "files": sorted(files)})
    return found, links


def count_done(path, batch):
    """Rows done: the complete (newline-ended) non-blank lines, read line by line as answer files can be large; with
    a batch, (index + 1) batches of ms-swift sample's {"index": last batch done}."""
    try:
        with open(path, "rb") as f:
            if batch:
                return (int(json.load(f)["index"]) + 1) * batch
            return sum(1 for line in f if line.endswith(b"\n") and line.strip())
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def main():
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "log": {"type": "path", "required": True},
            "offset": {"type": "int", "default": 0},
            "wait": {"type": "float", "default": 0},
            "pattern": {"type": "str", "default": PROGRESS_PATTERN},
            "tail": {"type": "int", "default": 0},
            "checkpoints": {"type": "path"},
            "known_links": {"type": "dict", "default": {}},
            "count": {"type": "path"},
            "count_batch": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    p = module.params
    progress_re = re.compile(p["pattern"])
    deadline = time.monotonic() + p["wait"]
    offset, progress, last = p["offset"], [], ""
    while True:
        state = unit_state(module, p["unit"])
        lines, offset = read_lines(p["log"], offset)
        progress += [summarize(line) for line in lines if progress_re.search(line)]
        last = lines[-1] if lines else last
        running = state["state"] in RUNNING
        if not running or time.monotonic() >= deadline:
            break
        if p["checkpoints"] and last_links(p["checkpoints"]) != p["known_links"]:
            break
        time.sleep(1)
    checkpoints, links = list_checkpoints(p["checkpoints"]) if p["checkpoints"] else ([], {})
    module.exit_json(
        changed=False,
        running=running,
        progress=progress,
        last_line=last,
        latest=progress[-1] if progress else last,
        offset=offset,
        tail=last_lines(p["log"], p["tail"]) if p["tail"] > 0 else [],
        counted=count_done(p["count"], p["count_batch"]) if p["count"] else 0,
        checkpoints=checkpoints,
        last_checkpoints=links,
        **state,
    )


if __name__ == "__main__":
    main()
