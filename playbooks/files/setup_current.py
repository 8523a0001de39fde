#!/usr/bin/env python3
"""Is this node's setup current? Prints {"current": bool, "same_inputs": bool, "why": str, "record": dict | None}
as JSON (run by setup.yml before any role); record: the node's setup record when current (the controller keeps it).

Current: the last setup finished here with the same fingerprint (swiftfleet.setup_fingerprint: the kit's files
and the host's variables), and what it left has not drifted since: the environment and the env files it recorded
exist, every distribution it recorded has that version in the environment, the driver is the one it saw, and
the storage it recorded (data directory, hub cache, the NVMe and shared mounts) is still there.
Standard library only, and no import of torch (seconds): versions come from the environment's metadata.
"""

import argparse
import json
import os
import shutil
import subprocess

NO_GPU = "no GPU"  # stack_report.py's word for a node without nvidia-smi


def _versions(python: str) -> dict[str, str]:
    """Every distribution of the environment by PEP 503 name, the first on sys.path winning (as stack_report.py
    records them)."""
    code = (
        "import importlib.metadata as m, json, re\n"
        "out = {}\n"
        "for d in m.distributions():\n"
        "    n = d.metadata['Name']\n"
        "    if n: out.setdefault(re.sub(r'[-_.]+', '-', n).lower(), d.version)\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def _driver() -> str:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return NO_GPU
    done = subprocess.run(
        [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return lines[0] if done.returncode == 0 and lines else "unknown"


def recorded_fingerprint(setup_file: str) -> str | None:
    try:
        with open(setup_file) as f:
            return json.load(f).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def read_record(fingerprint: str, setup_file: str, record_file: str) -> tuple[str, dict]:
    """The node's setup record, with "" when it is current, else the first reason it is not."""
    if recorded_fingerprint(setup_file) != fingerprint:
        if not os.path.exists(setup_file):
            return f"no {setup_file} (never set up here, or the last setup did not finish)", {}
        return "the kit's roles or this host's setup variables changed since the last setup", {}
    try:
        with open(record_file) as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        return f"no readable setup record {record_file} ({exc})", {}
    if not isinstance(record, dict):
        return f"the setup record {record_file} is not a JSON object", {}
    return drift(record), record


def drift(record: dict) -> str:
    """ "" when what the record says setup left is still there, else the first thing that is not."""
    for key, what in (("data_dir", "the data directory"), ("hub_cache", "the hub cache")):
        if record.get(key) and not os.path.isdir(record[key]):
            return f"{what} {record[key]} is gone"
    for key in ("scratch", "shared_dir"):
        mount = record.get(key) and (record[key] if key == "scratch" else os.path.dirname(record[key]))
        if mount and not os.path.ismount(mount):
            return f"{mount} is not mounted"
    python = os.path.join(record.get("venv", ""), "bin", "python")
    if not os.access(python, os.X_OK):
        return f"{python} is gone"
    missing = [f for f in record.get("env_files", []) if not os.path.exists(f)]
    if missing:
        return f"{missing[0]} is gone"
    wanted: dict[str, str] = record.get("distributions", {})
    try:
        have = _versions(python)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return f"{python} does not run ({exc})"
    for name, version in sorted(wanted.items()):
        if have.get(name) != version:
            return f"{name} is {have.get(name, 'not installed')} in {record['venv']}, setup left {version}"
    driver = _driver()
    if driver != record.get("driver"):
        return f"the NVIDIA driver is {driver}, setup saw {record.get('driver')}"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fingerprint", required=True)
    parser.add_argument("--setup-file", default="/etc/swiftfleet/setup.json")
    parser.add_argument("--record-file", default="/etc/swiftfleet/node.json")
    args = parser.parse_args()
    why, record = read_record(args.fingerprint, args.setup_file, args.record_file)
    # same_inputs: the recorded fingerprint is this one (drift aside), so a run may keep it until it completes.
    same = recorded_fingerprint(args.setup_file) == args.fingerprint
    print(
        json.dumps({"current": not why, "same_inputs": same, "why": why, "record": None if why else record})
    )


if __name__ == "__main__":
    main()
