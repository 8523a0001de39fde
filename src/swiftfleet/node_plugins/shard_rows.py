"""One node's share of a data-parallel job's rows: lines [lo, hi) of the job's .jsonl files read as one list.

Plain Python (no ms-swift, no swiftfleet): run.sh runs it on the node with the environment's Python before
`swift infer`; the plan imports it to count the rows and split them, so both sides count the same rows (every
non-blank line, in the order the job lists its files).

    python shard_rows.py LO HI DEST RESULT SRC [SRC ...]

Writes DEST (the share) and exits 0 for swift to run; exits ANSWERED when RESULT already holds one answer per row
of the share (a re-run keeps a finished node's answers); removes a partial RESULT first (ms-swift appends to it).
"""

import os
import sys
from collections.abc import Iterator

ANSWERED = 10


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


def main(argv: list[str]) -> int:
    lo, hi, dest, result, *sources = argv
    want = int(hi) - int(lo)
    if os.path.exists(result):
        with open(result, encoding="utf-8") as f:
            have = sum(1 for line in f if line.strip())
        if have == want:
            print(f"rows {lo}-{hi}: {have} answers already in {result}; not run again")
            return ANSWERED
        os.remove(result)
        print(
            f"rows {lo}-{hi}: {have} of {want} answers in {result} (an earlier run stopped): answering again"
        )
    with open(dest, "w", encoding="utf-8") as out:
        for i, line in enumerate(rows(sources)):
            if int(lo) <= i < int(hi):
                out.write(line)
    print(f"rows {lo}-{hi}: {want} to answer")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
