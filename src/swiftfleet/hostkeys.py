"""Pinning SSH host keys once, when a node joins, so that every later connection can refuse a changed key.

Local nodes hand their keys over `docker exec` (a channel that needs no trust in the network); machines
reached only over the network are scanned once with ssh-keyscan, and the fingerprints are printed so the
user can compare them with what the machine's console shows.
"""

import socket
import subprocess
import sys
import time
from collections.abc import Iterable

from swiftfleet.errors import SwiftfleetError

KEY_TYPES = "ed25519,ecdsa,rsa"
SAY_EVERY_S = 15  # a progress line this often while waiting for sshd


def host_field(host: str, port: int) -> str:
    """How known_hosts (and ssh looking a host up in it) names host:port."""
    return host if port == 22 else f"[{host}]:{port}"


def known_hosts_lines(host: str, port: int, public_keys: Iterable[str]) -> list[str]:
    """known_hosts lines for `host` from `<type> <base64> [comment]` public key lines (comments dropped)."""
    name = host_field(host, port)
    lines = []
    for key in public_keys:
        parts = key.split()
        if len(parts) >= 2 and not key.startswith("#"):
            lines.append(f"{name} {parts[0]} {parts[1]}")
    return lines


def scan(host: str, port: int = 22, timeout: int = 10) -> list[str]:
    """Fetch `host`'s keys with ssh-keyscan: known_hosts lines, at least one or a SwiftfleetError."""
    proc = subprocess.run(
        ["ssh-keyscan", "-T", str(timeout), "-p", str(port), "-t", KEY_TYPES, host],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise SwiftfleetError(f"{host}:{port}: no SSH host key could be read (is sshd reachable there?)")
    return lines


def announce(node: str, lines: list[str], how: str) -> None:
    """Print the fingerprints that were pinned, one line per key."""
    proc = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    for fp in proc.stdout.splitlines():  # "<bits> SHA256:<digest> <comment> (<TYPE>)"
        parts = fp.split()
        print(
            f"{node}: pinned {parts[-1].strip('()')} host key {parts[1]} ({how})", file=sys.stderr, flush=True
        )


def wait_for_ssh(host: str, port: int = 22, timeout: float = 60) -> None:
    """Wait until an SSH server answers at host:port with its banner."""
    start = time.monotonic()
    deadline = start + timeout
    last = ""
    said = 0
    while time.monotonic() < deadline:
        if (waited := int(time.monotonic() - start)) >= said + SAY_EVERY_S:
            said = waited
            print(
                f"{host}:{port}: waiting for SSH ({waited} s of {timeout:.0f} s)", file=sys.stderr, flush=True
            )
        try:
            with socket.create_connection((host, port), timeout=3) as conn:
                if conn.recv(64).startswith(b"SSH-"):
                    return
                last = "no SSH banner"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise SwiftfleetError(f"{host}:{port}: no SSH server answered within {timeout:.0f} s ({last})")
