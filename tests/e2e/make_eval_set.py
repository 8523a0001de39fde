"""A tiny multiple-choice eval set for evalscope's `general_mcq` (offline, no download): from the tiny model's
eval.jsonl, each question is a sentence and the right choice is its reversal (what the tiny model is trained on).

    python tests/e2e/make_eval_set.py build/tiny/eval.jsonl build/tiny/evalset
writes evalset/tiny_val.jsonl (subset `tiny`, evalscope's `val` split). Deterministic.
"""

import json
import random
import sys
from pathlib import Path


def make(eval_jsonl: Path, out: Path, count: int = 5) -> Path:
    rows = [json.loads(line) for line in eval_jsonl.read_text().splitlines() if line.strip()]
    pairs = [{m["role"]: m["content"] for m in r["messages"]} for r in rows]
    rng = random.Random(0)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, pair in enumerate(pairs[:count]):
        right = pair["assistant"]
        options = [right] + [pairs[(i + k) % len(pairs)]["assistant"] for k in (1, 2, 3)]
        rng.shuffle(options)
        row = {"id": i, "question": pair["user"], **dict(zip("ABCD", options, strict=True))}
        row["answer"] = "ABCD"[options.index(right)]
        lines.append(json.dumps(row))
    path = out / "tiny_val.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} EVAL_JSONL OUT_DIR")
    print(make(Path(sys.argv[1]), Path(sys.argv[2])))
