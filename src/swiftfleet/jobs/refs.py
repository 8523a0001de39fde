"""Where a job's model and datasets come from: a local path, an s3:// URI or a hub id.

A reference is local when it starts with '/', '.' or '~' (relative paths are relative to the directory the
command runs in, the repository root for `ansible-playbook`); s3:// URIs are fetched on each node; anything else
must look like a hub id (`org/name`, datasets optionally `:subset`). Datasets take ms-swift's `#count` suffix.
"""

import re
from pathlib import Path
from typing import Literal, NamedTuple

# AWS bucket naming rules: 3-63 chars of lowercase letters, digits, dots and hyphens, alphanumeric at both ends.
S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_DATASET = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+(?:/[\w.-]+)*)?$")
LOCAL_PREFIXES = ("/", ".", "~")


class Ref(NamedTuple):
    source: Literal["local", "s3", "hub"]
    path: str  # the local path, the URI or the hub id (with subsets), without the #count suffix
    samples: int | None = None

    @property
    def basename(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def _s3(uri: str) -> None:
    m = S3_URI.match(uri)
    if not m or ".." in m["bucket"] or not m["key"]:
        raise ValueError(
            f"{uri!r} is not an s3://bucket/key URI (bucket: 3-63 lowercase letters, digits, '.', '-'; key required)"
        )


def parse_dataset(text: str) -> Ref:
    path, sep, count_text = text.rpartition("#") if "#" in text else (text, "", "")
    samples = None
    if sep:
        if not count_text.isdigit() or int(count_text) == 0:
            raise ValueError(f"{text!r}: the #count suffix must be a positive whole number of samples")
        samples = int(count_text)
    if path.startswith("s3://"):
        _s3(path)
        return Ref("s3", path, samples)
    if path.startswith(LOCAL_PREFIXES):
        local = Path(path).expanduser()
        if not local.exists():
            raise ValueError(f"dataset {path!r} does not exist here (local paths are read from this machine)")
        return Ref("local", path, samples)
    if not HUB_DATASET.match(path):
        raise ValueError(
            f"{path!r} is neither a local path (start it with /, ./ or ~), an s3:// URI nor a hub id org/name[:subset]"
        )
    return Ref("hub", path, samples)


def parse_model(text: str) -> Ref:
    if text.startswith("s3://"):
        _s3(text)
        return Ref("s3", text)
    if text.startswith(LOCAL_PREFIXES):
        local = Path(text).expanduser()
        if not (local / "config.json").is_file():
            raise ValueError(f"model {text!r} is not a model directory here (no config.json)")
        return Ref("local", text)
    if not HUB_ID.match(text):
        raise ValueError(
            f"{text!r} is neither a local model directory (start it with /, ./ or ~), an s3:// URI nor a hub id org/name"
        )
    return Ref("hub", text)
