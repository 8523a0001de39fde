"""The wheel cache's key, entries and builder choice (swiftfleet.wheel_cache); the role that carries them out is
tested by its Molecule scenario (roles/wheel_cache: two nodes, one build)."""

import hashlib
import json
from pathlib import Path

import pytest

from swiftfleet import filters, wheel_cache
from swiftfleet.wheel_cache import WheelCacheError

CPU = {
    "torch": "2.13.0+cpu",
    "cuda": "none",
    "python": "cp311",
    "platform": "linux-x86_64",
    "libc": "glibc2.36",
}
GPU = {**CPU, "torch": "2.13.0+cu130", "cuda": "13.0", "libc": "glibc2.35"}


def test_the_key_names_package_version_torch_build_cuda_python_and_platform() -> None:
    [item] = wheel_cache.plan(["Flash_Attn==2.8.3"], GPU)
    assert item["key"] == "flash-attn-2.8.3-torch2.13.0+cu130-cuda13.0-cp311-linux-x86_64-glibc2.35"
    assert item["pip_args"] == [
        "--no-deps", "--no-build-isolation", "--no-binary", "flash-attn", "flash-attn==2.8.3"
    ]  # fmt: skip


def test_every_part_of_the_stack_changes_the_key() -> None:
    keys = {wheel_cache.plan(["eetq==1.0.0"], {**GPU, part: "other"})[0]["key"] for part in GPU}
    assert len(keys) == len(GPU)
    assert wheel_cache.plan(["eetq==1.0.0"], GPU)[0]["key"] not in keys


def test_a_source_build_is_keyed_by_its_commit_and_its_build_options() -> None:
    apex = {"name": "apex", "version": "a" * 40, "source": "/opt/src/apex"}
    plain = wheel_cache.plan([apex], GPU)[0]
    cuda_ext = ["--config-settings=--build-option=--cuda_ext"]
    fused = wheel_cache.plan([{**apex, "build_args": cuda_ext}], GPU)[0]
    assert plain["key"].startswith("apex-" + "a" * 40 + "-torch2.13.0+cu130-")
    assert fused["key"].startswith(plain["key"] + "-args")
    assert fused["pip_args"][-2:] == [*cuda_ext, "/opt/src/apex"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("flash-attn", "not pinned as name==version"),
        ("flash-attn>=2.8", "not pinned as name==version"),
        ({"name": "apex", "version": "main/../x"}, "not an exact version or commit"),
        ({"name": "apex", "version": "1", "sauce": "/x"}, "sauce"),
    ],
)
def test_a_build_that_names_no_exact_release_is_refused_in_one_line(entry: object, message: str) -> None:
    with pytest.raises(WheelCacheError, match=message) as refused:
        wheel_cache.plan([entry], CPU)  # type: ignore[list-item]
    assert "\n" not in str(refused.value)


def test_a_node_without_a_usable_stack_is_refused() -> None:
    with pytest.raises(WheelCacheError, match="no usable stack: torch: Value error") as refused:
        wheel_cache.plan(["eetq==1.0.0"], {**CPU, "torch": "2.13/../x"})
    assert "\n" not in str(refused.value)


def _store(cache: Path, key: str, data: bytes, sha256: str | None = None) -> Path:
    entry_dir = cache / key
    entry_dir.mkdir(parents=True)
    wheel = entry_dir / "pkg-1.0-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(data)
    item = {"key": key, "name": "pkg", "version": "1.0", "build_args": [], "stack": CPU}
    record = wheel_cache.entry(item, str(wheel), sha256 or hashlib.sha256(data).hexdigest(), "node-a")
    (entry_dir / wheel_cache.ENTRY_FILE).write_text(json.dumps(record))
    return wheel


def test_lookup_hits_only_a_whole_entry_whose_wheel_matches_its_checksum(tmp_path: Path) -> None:
    wheel = _store(tmp_path, "good", b"wheel bytes")
    assert wheel_cache.lookup(tmp_path, "good") == {
        "state": "hit", "wheel": str(wheel), "sha256": hashlib.sha256(b"wheel bytes").hexdigest(),
        "built_on": "node-a",
    }  # fmt: skip
    assert wheel_cache.lookup(tmp_path, "absent")["state"] == "missing"

    _store(tmp_path, "corrupt", b"truncated", sha256="0" * 64)
    corrupt = wheel_cache.lookup(tmp_path, "corrupt")
    assert corrupt["state"] == "corrupt" and "records " + "0" * 64 in corrupt["why"]

    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / ".pkg.whl.part").write_bytes(b"half")
    assert wheel_cache.lookup(tmp_path, "partial")["state"] == "partial"

    _store(tmp_path, "lost", b"x").unlink()
    assert wheel_cache.lookup(tmp_path, "lost")["state"] == "corrupt"

    _store(tmp_path, "garbled", b"x")
    (tmp_path / "garbled" / wheel_cache.ENTRY_FILE).write_text("{not json")
    assert wheel_cache.lookup(tmp_path, "garbled")["state"] == "corrupt"


def test_one_node_per_missing_key_builds_and_hits_build_nowhere(tmp_path: Path) -> None:
    _store(tmp_path, wheel_cache.plan(["pkg==1.0"], CPU)[0]["key"], b"w")
    plans = {
        "a": filters.wheel_lookup(wheel_cache.plan(["pkg==1.0", "eetq==1.0.0"], CPU), str(tmp_path)),
        "b": filters.wheel_lookup(wheel_cache.plan(["pkg==1.0", "eetq==1.0.0"], CPU), str(tmp_path)),
        "gpu": filters.wheel_lookup(wheel_cache.plan(["eetq==1.0.0"], GPU), str(tmp_path)),
    }
    pairs = list(plans.items())
    assert [i["name"] for i in filters.wheel_builds("a", pairs)] == ["eetq"]
    assert filters.wheel_builds("b", pairs) == []  # same stack as a: waits for a's wheel
    assert [i["key"] for i in filters.wheel_builds("gpu", pairs)] == [plans["gpu"][0]["key"]]  # its own stack
