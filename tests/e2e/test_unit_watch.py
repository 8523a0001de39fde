"""The log reading of playbooks/library/swiftfleet_unit_watch.py (the watch loop's module), on real files:
whole lines only, tqdm's carriage returns as line ends, the resume offset, a shrunk log, ms-swift's progress."""

from pathlib import Path

from tests.conftest import library_module

WATCH = library_module("swiftfleet_unit_watch")
PROGRESS = (
    "{'loss': '5.844', 'grad_norm': '1.108', 'learning_rate': '8.536e-05', "
    "'global_step/max_steps': '5/20', 'elapsed_time': '1m 6s'}"
)


def test_reads_whole_lines_and_resumes_where_it_stopped(tmp_path: Path) -> None:
    log = tmp_path / "rank0.log"
    # What ms-swift writes: tqdm's bar, a blanked line, then the step's dict, all between carriage returns.
    chunk = b"\rTrain:  25%|  | 5/20 [00:04<22:12]\r" + b" " * 30 + b"\r" + PROGRESS.encode() + b"\npartial"
    log.write_bytes(chunk)
    lines, offset = WATCH.read_lines(str(log), 0)
    assert lines == ["Train:  25%|  | 5/20 [00:04<22:12]", PROGRESS]
    assert [line for line in lines if WATCH.re.search(WATCH.PROGRESS_PATTERN, line)] == [PROGRESS]
    assert offset == log.stat().st_size - len("partial")  # the unfinished line waits for its end
    with log.open("ab") as f:
        f.write(b" line\n")
    assert WATCH.read_lines(str(log), offset) == (["partial line"], log.stat().st_size)


def test_a_shrunk_or_missing_log_is_read_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "rank1.log"
    log.write_text("new run\n")
    assert WATCH.read_lines(str(log), 10_000) == (["new run"], 8)
    assert WATCH.read_lines(str(tmp_path / "absent.log"), 5) == ([], 0)


def test_progress_lines_are_summarized() -> None:
    summary = WATCH.summarize(PROGRESS)
    assert summary == "step 5/20  loss 5.844  grad_norm 1.108  learning_rate 8.536e-05  elapsed_time 1m 6s"
    assert WATCH.summarize("[INFO:swift] not a dict") == "[INFO:swift] not a dict"


def test_counts_complete_answer_lines_across_blocks(tmp_path: Path) -> None:
    answers = tmp_path / "result.jsonl"
    assert WATCH.count_done(str(answers), 0) == 0  # not written yet
    row = b'{"response": "' + b"x" * 700_000 + b'"}\n'  # two rows span a 1 MiB block boundary
    answers.write_bytes(row + b"\n" + row + b'{"response": "half')
    assert WATCH.count_done(str(answers), 0) == 2  # the blank line and the half-written row do not count


def test_counts_the_batches_ms_swift_sample_has_done(tmp_path: Path) -> None:
    state = tmp_path / "ckpt_state.json"
    assert WATCH.count_done(str(state), 3) == 0  # not started
    state.write_text('{"index": 4}')  # batches 0-4 done, 3 rows each
    assert WATCH.count_done(str(state), 3) == 15
    state.write_text('{"ind')  # read while ms-swift rewrites it: no count rather than a failed watch
    assert WATCH.count_done(str(state), 3) == 0
