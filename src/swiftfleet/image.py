"""The Debian node image of local clusters and Molecule scenarios, built without any image registry.

mmdebstrap makes a bookworm rootfs from the Debian mirror, `docker import` turns it into an image whose
PID 1 is systemd. No SSH host keys are baked in: every container makes its own at first boot, so no two
nodes share a key and pinning a key means something.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker
import docker.errors

from swiftfleet.errors import SwiftfleetError

DEFAULT_TAG = "swiftfleet-node:bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# python3-apt: Ansible's apt module; dbus: systemd-run, hostnamectl and friends over the system bus; rsync: the
# Ubuntu server images the Deep Learning AMIs build on ship it, so a local node is set up as a DLAMI is
# (node_storage installs it where it is missing; its Molecule scenario removes it first to prove that).
PACKAGES = (
    "python3", "python3-apt", "python3-venv", "openssh-server", "sudo", "systemd", "systemd-sysv",
    "dbus", "iproute2", "procps", "ca-certificates", "rsync",
)  # fmt: skip
# dpkg without fsync and without manuals: the image makes throwaway test nodes. The options stay in the image
# (as in Debian's slim images), so the roles' later installs are quick and small too.
DPKG_OPTIONS = (
    "force-unsafe-io",
    *(f"path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")),
)
# Runs in the finished rootfs ($1). Units that need a console or real hardware are masked: a container has none.
CUSTOMIZE = r"""set -eu
root="$1"
rm -f "$root"/etc/ssh/ssh_host_*
cat > "$root"/etc/systemd/system/ssh-hostkeys.service <<'EOF'
[Unit]
Description=Generate this node's own SSH host keys (the image carries none)
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
EOF
systemctl --root="$root" enable ssh-hostkeys.service ssh.service
systemctl --root="$root" mask getty@tty1.service console-getty.service systemd-udevd.service \
  systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount
: > "$root"/etc/machine-id
rm -f "$root"/var/lib/dbus/machine-id
"""
# `docker import` takes no STOPSIGNAL: containers set stop_signal=SIGRTMIN+3 themselves (systemd's halt signal).
CHANGES = [
    "ENV container=docker",
    'CMD ["/lib/systemd/systemd"]',
    "LABEL org.swiftfleet.role=node-image",
]


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise SwiftfleetError(f"no Docker engine answers ({exc}): run `make dockerd`") from None
    return client


def ensure_image(tag: str = DEFAULT_TAG, rebuild: bool = False) -> None:
    """Build and import the node image as `tag` unless it is already there (or `rebuild`)."""
    client = docker_client()
    if not rebuild:
        try:
            client.images.get(tag)
            return
        except docker.errors.ImageNotFound:
            pass
    if shutil.which("mmdebstrap") is None:
        raise SwiftfleetError("mmdebstrap is not installed: run `make apt-deps`")
    with tempfile.TemporaryDirectory(prefix="swiftfleet-image-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        hook = Path(tmp) / "customize.sh"
        hook.write_text(CUSTOMIZE)
        progress(f"image {tag}: mmdebstrap bookworm ({len(PACKAGES)} packages) ...")
        cmd = [
            "mmdebstrap", "--variant=apt", "--mode=auto", "--quiet", f"--include={','.join(PACKAGES)}",
            *(f"--dpkgopt={opt}" for opt in DPKG_OPTIONS),
            f'--customize-hook=sh {hook} "$1"', "bookworm", str(tarball), *MIRRORS,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise SwiftfleetError(f"image {tag}: mmdebstrap failed (rc {proc.returncode}): {tail}")
        size_mb = tarball.stat().st_size // 2**20
        progress(f"image {tag}: importing the {size_mb} MB rootfs into Docker ...")
        repository, version = tag.rsplit(":", 1) if ":" in tag.rsplit("/", 1)[-1] else (tag, "latest")
        try:
            client.api.import_image_from_file(
                str(tarball), repository=repository, tag=version, changes=CHANGES
            )
        except docker.errors.APIError as exc:
            raise SwiftfleetError(f"image {tag}: docker import failed: {exc.explanation}") from None
    progress(f"image {tag}: ready")


def node_image(tag: str) -> None:
    """The image a local cluster's nodes start from: the base image is built when missing; any other (a baked
    one, `swiftfleet image bake`) must be there, as nothing here could build it."""
    if tag == DEFAULT_TAG:
        ensure_image(tag)
        return
    try:
        docker_client().images.get(tag)
    except docker.errors.ImageNotFound:
        raise SwiftfleetError(
            f"image {tag} (the cluster file's image:) not found in Docker: `swiftfleet image list` shows the baked "
            f"images; the base image is {DEFAULT_TAG}"
        ) from None


def progress(line: str) -> None:
    """One progress line on stderr (stdout stays clean for --json output)."""
    print(line, file=sys.stderr, flush=True)
