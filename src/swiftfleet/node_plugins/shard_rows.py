"""One node's share of a data-parallel job's rows: lines [lo, hi) of the job's .jsonl files read as one list.

Plain Python (no ms-swift, no swiftfleet): run.sh runs it on the node with the environment's Python before
`swift infer`; the plan imports it to count the rows and split them, so both sides count the same rows (every
non-blank line, in the order the job lists its files).

    python shard_rows.py LO HI DEST RESULT SRC [SRC ...]

Writes DEST, the rows of the share not yet answered, and exits 0 for swift to run; exits ANSWERED when RESULT
already holds one answer per row of the share. ms-swift appends each write batch of answers to RESULT (its
result_path) in row order, so a run that stopped left the first answers of the share: a re-run keeps them and
answers the rest (a half-written last line is cut off first).
"""

import sys
from collections.abc import Iterator
from itertools import islice

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


def main(argv: list[str]) -> int:
    lo, hi, dest, result, *sources = int(argv[0]), int(argv[1]), *argv[2:]
    want, have = hi - lo, answered(result)
    if have >= want:
        print(f"rows {lo}-{hi}: {have} answers already in {result}; not run again")
        return ANSWERED
    with open(dest, "w", encoding="utf-8") as out:
        out.writelines(islice(rows(sources), lo + have, hi))
    earlier = f" ({have} answered by an earlier run)" if have else ""
    print(f"rows {lo}-{hi}: {want - have} to answer{earlier}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
