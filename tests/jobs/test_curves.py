"""`swiftfleet plot`: a fetched job's logging.jsonl rows (ms-swift 4.6.0's own format, copied from a CPU run of
the tiny model) become one curve per quantity, a resumed run's rows replacing the earlier run's at the same step."""

import json
from pathlib import Path

import pytest

from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import curves
from tests.conftest import run_cli


def _row(step: int, total: int, loss: float, lr: float) -> str:
    return json.dumps(
        {"loss": loss, "grad_norm": 1.13, "learning_rate": lr, "token_acc": 0.0156, "epoch": 0.08,
         "global_step/max_steps": f"{step}/{total}", "elapsed_time": "1s", "remaining_time": "7s",
         "train_speed(s/it)": 1.33}
    )  # fmt: skip


SUMMARY = json.dumps(
    {
        "train_runtime": 5.07,
        "train_loss": 5.84,
        "epoch": 0.48,
        "global_step/max_steps": "6/6",
        "elapsed_time": "5s",
    }
)


def _run(output: Path, name: str, *lines: str) -> None:
    (output / name).mkdir(parents=True)
    (output / name / "logging.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SWIFTFLEET_OUTPUTS_DIR", str(tmp_path))
    return tmp_path


def test_a_resumed_job_is_one_curve_later_runs_winning(outputs: Path) -> None:
    output = outputs / "tiny" / "output"
    # v2 ran first (steps 1-6), v10 resumed from checkpoint-4: numeric order, not the names' (v10 < v2 as text).
    _run(output, "v2-20261204-120000", *(_row(s, 6, 6.0 - s / 10, 1e-4 / s) for s in (1, 2, 4, 6)), SUMMARY)
    _run(output, "v10-20261204-130000", _row(6, 8, 5.0, 3e-5), _row(8, 8, 4.5, 0.0), '{"loss": 4.4, "glo')
    _run(output, "not-a-run", _row(9, 9, 1.0, 1.0))  # not ms-swift's vN-DATE: not read
    read = curves.read(output)
    assert read.loss == {1: 5.9, 2: 5.8, 4: 5.6, 6: 5.0, 8: 4.5}
    assert read.learning_rate == {1: 1e-4, 2: 5e-5, 4: 2.5e-5, 6: 3e-5, 8: 0.0}
    assert (read.runs, read.unreadable) == (2, 1)

    path, said = curves.plot("tiny")
    assert path == outputs / "tiny" / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert said == (
        f"loss and learning rate of 'tiny', steps 1-8 (5 logged) from 2 run(s): {path} "
        "(1 unreadable line(s) skipped)"
    )


def test_nothing_to_plot_is_one_line(outputs: Path) -> None:
    with pytest.raises(
        SwiftfleetError, match=r"^no fetched output for job 'gone' at .*output: fetch brings it back"
    ):
        curves.plot("gone")
    _run(outputs / "quiet" / "output", "v0-20261204-120000", SUMMARY)
    with pytest.raises(SwiftfleetError, match=r"^job 'quiet': no logged loss in .*\(1 run\(s\) found;"):
        curves.plot("quiet")


def test_an_unwritable_place_is_one_line(outputs: Path) -> None:
    _run(outputs / "tiny" / "output", "v0-20261204-120000", _row(1, 2, 3.0, 1e-4))
    (outputs / "tiny" / curves.PNG_NAME).mkdir()  # a directory where the PNG goes
    with pytest.raises(SwiftfleetError, match=r"^cannot write .*/tiny/curves\.png \(Is a directory\)$"):
        curves.plot("tiny")


def test_the_command_takes_a_job_file_or_a_name_and_nothing_else(outputs: Path, tmp_path: Path) -> None:
    _run(outputs / "tiny-lora" / "output", "v0-20261204-120000", _row(1, 2, 3.0, 1e-4), _row(2, 2, 2.0, 0.0))
    from_file = run_cli(
        "plot", "jobs/tiny-lora.yml"
    )  # the shipped job of that name; its data need not be here
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.startswith("loss and learning rate of 'tiny-lora', steps 1-2 (2 logged)")
    assert (outputs / "tiny-lora" / "curves.png").is_file()
    bad = run_cli("plot", "../etc")
    assert (bad.returncode, bad.stderr) == (
        2, "swiftfleet: '../etc' is neither a job file (.yml) nor a job's name (lowercase letters, digits and -, "
        "up to 40)\n",
    )  # fmt: skip
    (tmp_path / "nameless.yml").write_text("job: {kind: swift sft}\n")
    nameless = run_cli("plot", str(tmp_path / "nameless.yml"))
    assert (
        nameless.stderr
        == f"swiftfleet: job file {tmp_path / 'nameless.yml'}: job.name: missing (a `job:` mapping with a name)\n"
    )
