"""One node's share of a data-parallel job's rows: lines [lo, hi) of the job's .jsonl files read as one list.

Plain Python (no ms-swift, no swiftfleet): run.sh runs it on the node with the environment's Python before
`swift infer|sample`; the plan imports it to count the rows and split them, so both sides count the same rows
(every non-blank line, in the order the job lists its files).

    python shard_rows.py MODE KEY LO HI DEST RESULT SRC [SRC ...]

Writes DEST, the rows of the share still to do, and exits 0 for swift to run; exits DONE when RESULT already holds
the share's results. MODE says how a share is done and resumed:
- lines (`swift infer`): ms-swift appends each write batch of answers to RESULT (its result_path) in row order, so
  a run that stopped left the first answers of the share: a re-run keeps them and answers the rest (a half-written
  last line is cut off first). Done when RESULT holds one answer per row.
- file (`swift sample`): ms-swift writes RESULT (output_dir/output_file) only once the share is done, and resumes a
  stopped one from its own state beside it (SAMPLE_STATE; `--resume true`), so DEST is the whole share every time.
KEY names the plan's rows and arguments: when it differs from the earlier run's (DEST.key), that run's results are
removed first, so a re-run with other rows or arguments does the share anew instead of keeping stale results.
"""

import os
import sys
from collections.abc import Iterator
from itertools import islice

DONE = 10
MODES = ("lines", "file")
# What `swift sample` keeps beside RESULT while it runs (swift/pipelines/sampling/sampling.py run()): its results
# so far (RESULT + suffix) and the last batch done (ckpt_state.json in the output directory).
SAMPLE_STATE = (".resume", ".tmp")
SAMPLE_CKPT = "ckpt_state.json"


def rows(paths: list[str]) -> Iterator[str]:
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield line.rstrip("\n") + "\n"


def count(paths: list[str]) -> int:
    return sum(1 for _ in rows(paths))


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) ranges, the first `total % parts` one row longer."""
    size, extra = divmod(total, parts)
    bounds, lo = [], 0
    for i in range(parts):
        hi = lo + size + (i < extra)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def answered(result: str) -> int:
    """The complete answers in RESULT, after cutting off a half-written last line; 0 when there is no file."""
    try:
        with open(result, "r+b") as f:
            data = f.read()
            complete = data[: data.rfind(b"\n") + 1]
            if len(complete) < len(data):
                f.truncate(len(complete))
    except FileNotFoundError:
        return 0
    return sum(1 for line in complete.split(b"\n") if line.strip())


def results_of(mode: str, result: str) -> list[str]:
    """The files an earlier run of this share left."""
    if mode == "lines":
        return [result]
    return [result, *(result + s for s in SAMPLE_STATE), os.path.join(os.path.dirname(result), SAMPLE_CKPT)]


def forget_other_run(mode: str, key: str, dest: str, result: str) -> bool:
    """Remove an earlier run's results when it had other rows or arguments; True when it did."""
    try:
        with open(dest + ".key", encoding="utf-8") as f:
            earlier = f.read().strip()
    except FileNotFoundError:
        earlier = None
    stale = earlier is not None and earlier != key
    if stale or earlier is None:  # no key: results without one are from no known run
        for path in results_of(mode, result):
            if os.path.exists(path):
                os.remove(path)
                stale = True
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    with open(dest + ".key", "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return stale


def main(argv: list[str]) -> int:
    mode, key, lo, hi, dest, result, *sources = argv[0], argv[1], int(argv[2]), int(argv[3]), *argv[4:]
    if mode not in MODES:
        raise SystemExit(f"mode {mode!r}: one of {', '.join(MODES)}")
    if forget_other_run(mode, key, dest, result):
        print(
            f"rows {lo}-{hi}: the rows or arguments changed since the earlier run; its results were removed"
        )
    if mode == "file":
        if os.path.exists(result):
            print(f"rows {lo}-{hi}: done by an earlier run ({result}); not run again")
            return DONE
        resumed = os.path.exists(os.path.join(os.path.dirname(result), SAMPLE_CKPT))
        with open(dest, "w", encoding="utf-8") as out:
            out.writelines(islice(rows(sources), lo, hi))
        print(f"rows {lo}-{hi}: {hi - lo} to sample" + (" (resuming the earlier run)" if resumed else ""))
        return 0
    want, have = hi - lo, answered(result)
    if have >= want:
        print(f"rows {lo}-{hi}: {have} answers already in {result}; not run again")
        return DONE
    with open(dest, "w", encoding="utf-8") as out:
        out.writelines(islice(rows(sources), lo + have, hi))
    earlier = f" ({have} answered by an earlier run)" if have else ""
    print(f"rows {lo}-{hi}: {want - have} to answer{earlier}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
