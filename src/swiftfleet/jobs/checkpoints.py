"""Checkpoints that leave the nodes while a job trains: which checkpoint-N is complete, what each round of the
watch copies from which node, the marker a copied checkpoint gets, and the newest complete one that
`resume: latest` takes.

Complete (the one definition, `is_complete`): rank 0's `last-checkpoint` link in the checkpoint's run directory
names checkpoint-M with M >= N. ms-swift 4.6.0 swaps that link in (os.replace) only once every rank has written
its part of checkpoint-M: after a barrier in the Trainer (DDP, DeepSpeed), after the collective save (and its
async finish) in Megatron; its last save moves it too. Every rank finished checkpoint-N before it worked towards
M, so an older checkpoint is complete too. "The job ended" is not enough: a rank killed mid-save ends the job too,
and an earlier run's directory on the node may hold such a half-written checkpoint.
"""

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MARKER = ".swiftfleet-complete"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_RSYNC_WILDCARD = re.compile(r"[*?[]")


def step_of(path: str) -> int | None:
    """N of a .../checkpoint-N path, else None."""
    found = _CHECKPOINT.match(Path(path).name)
    return int(found[1]) if found else None


def is_complete(path: str, rank0_links: Mapping[str, str]) -> bool:
    """Whether checkpoint-N at `path` (relative to the output directory) is complete on every node: see the
    module's docstring. rank0_links: run directory -> the checkpoint its last-checkpoint link names."""
    step = step_of(path)
    if step is None:
        return False
    linked = step_of(rank0_links.get(str(Path(path).parent), ""))
    return linked is not None and linked >= step


def _local_marker(local_dir: str, path: str) -> Path:
    return Path(local_dir) / "output" / path / MARKER


def to_copy(
    plan: Mapping[str, Any], looks: Sequence[Mapping[str, Any]], done: Iterable[str]
) -> list[dict[str, Any]]:
    """This round's copies: every complete checkpoint that rank 0 holds and that is not copied yet (in `done`,
    or marked on the controller). looks: each rank's swiftfleet_unit_watch result, in rank order. A file goes
    from the lowest rank holding it; the parts only other ranks hold (per-rank RNG states, ZeRO shards, Megatron
    dist checkpoints) join rank 0's in the same directory."""
    nodes = plan["nodes"]
    out = plan["output"]
    rank0_links = looks[0].get("last_checkpoints", {})
    held: dict[
        str, dict[str, tuple[int, list[Any]]]
    ] = {}  # checkpoint -> file -> (rank, [path, size, mtime])
    for rank, look in enumerate(looks):
        for ckpt in look.get("checkpoints", []):
            files = held.setdefault(ckpt["path"], {})
            for entry in ckpt["files"]:
                files.setdefault(entry[0], (rank, entry))
    rank0_has = {c["path"] for c in looks[0].get("checkpoints", [])}
    skip = set(done)
    copies = []
    for path, files in sorted(held.items(), key=lambda kv: (step_of(kv[0]) or 0, kv[0])):
        if path not in rank0_has or path in skip or not is_complete(path, rank0_links):
            continue
        if out["mode"] != "s3" and _local_marker(out["local_dir"], path).exists():
            continue
        base = f"{out['uri']}/{path}" if out["mode"] == "s3" else f"{out['local_dir']}/output/{path}"
        copies.append(
            {
                "path": path,
                "step": step_of(path),
                "dest": base,
                "ranks": sorted({rank for rank, _ in files.values()}),
                "written": max(entry[2] for _, entry in files.values()),
                "bytes": sum(entry[1] for _, entry in files.values()),
                "files": [
                    {
                        "host": nodes[rank]["host"],
                        "src": f"{nodes[rank]['job_dir']}/output/{path}/{name}",
                        "dest": f"{base}/{name}",
                    }
                    for name, (rank, _) in sorted(files.items())
                ],
                # Per rank, one transfer of its files instead of one per file: `aws s3 cp --recursive` with include
                # filters (names), or one rsync pull to the controller with `rsync` (its filter options).
                "parts": [
                    {
                        "host": nodes[rank]["host"],
                        "src": f"{nodes[rank]['job_dir']}/output/{path}",
                        "dest": base,
                        "names": (names := sorted(n for n, (r, _) in files.items() if r == rank)),
                        "rsync": rsync_filters(names),
                    }
                    for rank in sorted({rank for rank, _ in files.values()})
                ],
                "marker_dest": f"{base}/{MARKER}",
            }
        )
    return copies


def rsync_filters(names: Iterable[str]) -> list[str]:
    """rsync options that transfer exactly these files (paths relative to the transfer's root) and the directories
    on their way, nothing else. rsync's wildcards in a name (* ? [) are escaped; ms-swift and Megatron name no
    checkpoint file with a backslash, which rsync would read as an escape only beside a wildcard."""
    escaped = (_RSYNC_WILDCARD.sub(r"\\\g<0>", n) for n in names)
    return ["--include=*/", *(f"--include=/{n}" for n in escaped), "--exclude=*", "--prune-empty-dirs"]


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def landed(copies: Sequence[Mapping[str, Any]], results: Iterable[Any]) -> list[dict[str, Any]]:
    """The copies whose every file arrived, each with its marker (JSON text) and its one-line report.
    results: every rank's registered loop of copies (a skipped rank has no `results`), one per part (a rank's
    files: one rsync pull or one S3 upload). The copy tasks do not fail (failed_when false) so that one checkpoint
    removed meanwhile (save_total_limit) does not stop the run: a part arrived when its transfer ended with rc 0
    (rsync checks every file it writes against the sender's checksum)."""
    arrived: set[str] = set()
    for reg in results:
        for r in reg.get("results", []) if isinstance(reg, Mapping) else []:
            item = r.get("item", {})
            if "names" in item and r.get("rc") == 0:
                arrived.update(f"{item['dest']}/{name}" for name in item["names"])
    now = time.time()
    done = []
    for c in copies:
        if not all(f["dest"] in arrived for f in c["files"]):
            continue
        lag = now - float(c["written"])
        marker = {
            "step": c["step"],
            "ranks": c["ranks"],
            "files": len(c["files"]),
            "bytes": c["bytes"],
            "written": _iso(float(c["written"])),
            "copied": _iso(now),
            "lag_seconds": round(lag, 1),
        }
        report = (
            f"checkpoint-{c['step']} safe at {c['dest']}: {len(c['files'])} files, {c['bytes'] / 1e6:.1f} MB "
            f"from rank {', '.join(map(str, c['ranks']))}; lag {lag:.1f} s (written on the node -> safe)"
        )
        done.append({**c, "marker": json.dumps(marker, indent=1) + "\n", "report": report})
    return done


def latest_complete(root: Path) -> Path | None:
    """The newest checkpoint-N under root that was copied complete (holds the marker)."""
    found = [p.parent for p in root.glob(f"**/checkpoint-*/{MARKER}") if step_of(str(p.parent)) is not None]
    return max(found, key=lambda p: (step_of(str(p)) or 0, str(p)), default=None)


def outside_checkpoints(paths: Iterable[str]) -> list[str]:
    """The paths that lie in no checkpoint-N directory: the watch copies those, so the end of a job does not."""
    return [p for p in paths if not any(_CHECKPOINT.match(part) for part in Path(p).parts)]


def _plain(data: Any) -> Any:
    """Plain dicts and lists: Ansible hands over lazy, tagged subclasses."""
    return json.loads(json.dumps(data))


def _filter_to_copy(plan: Any, looks: Any, done: Any) -> list[dict[str, Any]]:
    return to_copy(_plain(plan), _plain(looks), _plain(done))


def _filter_landed(copies: Any, results: Any) -> list[dict[str, Any]]:
    return landed(_plain(copies), _plain(results))


def _filter_outside(paths: Any, streamed: bool) -> list[str]:
    return outside_checkpoints(_plain(paths)) if streamed else list(_plain(paths))


# filter_plugins/swiftfleet_checkpoints.py: `job_plan | swiftfleet_checkpoints_to_copy(looks, done)`,
# `copies | swiftfleet_checkpoints_landed(results)`, `paths | swiftfleet_outside_checkpoints(job_stream)`.
FILTERS = {
    "swiftfleet_checkpoints_to_copy": _filter_to_copy,
    "swiftfleet_checkpoints_landed": _filter_landed,
    "swiftfleet_outside_checkpoints": _filter_outside,
}
