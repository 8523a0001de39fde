"""swiftfleet.controller_file (the action swiftfleet_controller_file): whole, private from the first byte, and
unchanged when it already holds the content."""

import stat
from pathlib import Path

import pytest

from swiftfleet.controller_file import write


def test_written_whole_with_its_mode_then_unchanged(tmp_path: Path) -> None:
    report = tmp_path / "check.json"
    assert write(str(report), '{"nodes": []}\n', 0o600) is True
    assert report.read_text() == '{"nodes": []}\n'
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert write(str(report), '{"nodes": []}\n', 0o600) is False
    assert write(str(report), '{"nodes": []}\n', 0o644) is True  # the mode alone is a change
    assert stat.S_IMODE(report.stat().st_mode) == 0o644
    assert write(str(report), "{}\n", 0o644) is True and report.read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["check.json"]  # no temporary file left


def test_a_missing_directory_fails_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write(str(tmp_path / "gone" / "check.json"), "{}\n", 0o600)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "check.json"
    report.write_text("old\n")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write(str(report), "new\n", 0o600)
    assert report.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["check.json"]
