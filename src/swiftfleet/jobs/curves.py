"""A fetched training job's loss and learning-rate curves as a PNG.

ms-swift's Trainer writes one JSON row per logging step to output/vN-DATE/logging.jsonl (ms-swift 4.6.0
swift/trainers/mixin.py, `log`): `loss`, `learning_rate` and `global_step/max_steps` ("6/8"); the last rows are the
run's summary (train_runtime, ..., no `loss`). Each resume starts a new vN directory and logs again from the step
after its checkpoint, so the runs are read in N order and a later run's row replaces an earlier one's at the same
step.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs.plan import outputs_dir

RUN_DIR = re.compile(r"^v(\d+)-")
PNG_NAME = "curves.png"


@dataclass
class Curves:
    loss: dict[int, float] = field(default_factory=dict)
    learning_rate: dict[int, float] = field(default_factory=dict)
    runs: int = 0
    unreadable: int = 0  # lines that are not JSON (a run killed mid-write leaves half a line)


def read(output: Path) -> Curves:
    """Every run's logging rows under a job's fetched output/, by step."""
    logs = sorted(
        (int(found[1]), p.parent.name, p)
        for p in output.glob("v*-*/logging.jsonl")
        if (found := RUN_DIR.match(p.parent.name))
    )
    curves = Curves(runs=len(logs))
    for _, _, log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                curves.unreadable += 1
                continue
            step = _step(row)
            if step is None:
                continue
            for name, into in (("loss", curves.loss), ("learning_rate", curves.learning_rate)):
                value = row.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    into[step] = float(value)
    return curves


def _step(row: object) -> int | None:
    """The step of a row ("6/8" -> 6), or None for a row without one."""
    if not isinstance(row, dict):
        return None
    text = str(row.get("global_step/max_steps", "")).split("/", 1)[0]
    return int(text) if text.isdigit() else None


def _xy(points: dict[int, float]) -> tuple[list[int], list[float]]:
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def plot(job_name: str) -> tuple[Path, str]:
    """Write outputs/NAME/curves.png; return its path and a one-line account of what it shows."""
    root = outputs_dir(job_name)
    output = root / "output"
    if not output.is_dir():
        raise SwiftfleetError(
            f"no fetched output for job {job_name!r} at {output} (a training job with output: fetch brings it back)"
        )
    curves = read(output)
    if not curves.loss:
        raise SwiftfleetError(
            f"job {job_name!r}: no logged loss in {output}/v*/logging.jsonl "
            f"({curves.runs} run(s) found; ms-swift logs every logging_steps steps)"
        )
    from matplotlib.figure import Figure  # a plotting library loaded only to plot

    fig = Figure(figsize=(8, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(*_xy(curves.loss), marker=".")
    top.set(ylabel="loss", title=f"{job_name}: {curves.runs} run(s)")
    bottom.plot(*_xy(curves.learning_rate), marker=".", color="tab:orange")
    bottom.set(xlabel="step", ylabel="learning rate")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    path = root / PNG_NAME
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise SwiftfleetError(f"cannot write {path} ({exc.strerror})") from None
    steps = sorted(curves.loss)
    said = (
        f"loss and learning rate of {job_name!r}, steps {steps[0]}-{steps[-1]} ({len(steps)} logged) "
        f"from {curves.runs} run(s): {path}"
    )
    if curves.unreadable:
        said += f" ({curves.unreadable} unreadable line(s) skipped)"
    return path, said
