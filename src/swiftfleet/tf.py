"""Terraform driven from Python: one workspace per cluster, variables in a temporary `.tfvars.json`.

python-terraform 0.10.1 (2020) still drives Terraform 1.11; its quirks live here and nowhere else:
- destroy() passes `-force` by default, which Terraform >= 0.15 rejects; the kit destroys with
  `apply -destroy -json` instead, like apply (progress as it comes, Ctrl-C handled).
- the positional `dir_or_plan` maps to a form Terraform 1.x removed: always `working_dir`.
- output() returns None on failure and drops stderr: output_cmd(json=...) keeps the error, and the raw `-json`
  form ({"name": {"sensitive", "type", "value"}}) is unwrapped to plain values here.
- it cannot stream: captured output arrives only at exit, and `synchronous=False` leaks into the command line as
  `-synchronous=false` (the option is popped after the command is built), which Terraform rejects. So apply, plan and
  destroy run the CLI itself with `-json`: progress is reported as it happens (GPU instances take minutes) and errors come as
  structured diagnostics instead of scraped text.
"""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

from swiftfleet import paths
from swiftfleet.errors import SwiftfleetError

# Providers come from a filesystem mirror when there is one (no registry access needed); else from the registry.
PLUGIN_DIR_ENV = "SWIFTFLEET_TF_PLUGIN_DIR"
DEFAULT_PLUGIN_DIR = Path("/opt/tf-plugins")
# python-terraform logs every failure's raw stderr as a warning; the trimmed TerraformError says it once.
logging.getLogger("python_terraform").setLevel(logging.ERROR)


class TerraformError(SwiftfleetError):
    """A Terraform command failed; `errors` holds Terraform's own error messages, one per diagnostic."""

    def __init__(self, command: str, errors: list[str]) -> None:
        self.errors = errors or ["no error message (see terraform's output above)"]
        super().__init__(f"terraform {command} failed: " + " | ".join(self.errors))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_lines(stderr: str) -> list[str]:
    """Terraform's error blocks as "summary: detail" lines, without source snippets or warnings.

    A block starts at "Error: <summary>"; its detail is the unindented text that follows (indented lines quote
    the configuration). Commands that print a bare message instead (workspace ...) get that message.
    """
    blocks: list[list[str]] = []
    plain: list[str] = []
    kind: str | None = None  # the block being read: "error", "warning" or None between blocks
    for raw in ANSI.sub("", stderr).splitlines():
        if raw.startswith(("╷", "╵")):  # the frame around a block (coloured output)
            kind = None
            continue
        line = raw.removeprefix("│").removeprefix(" ") if raw.startswith("│") else raw
        if line.startswith("Error: "):
            blocks.append([line.removeprefix("Error: ").strip()])
            kind = "error"
        elif line.startswith(("Warning: ", "There are some problems with the CLI configuration")):
            kind = "warning"
        elif not line.strip() or line[0].isspace() or line.startswith("This was checked by"):
            continue
        elif kind == "error":
            blocks[-1].append(line.strip())
        elif kind is None:
            plain.append(line.strip())
    if blocks:
        return [b[0] + (": " + " ".join(b[1:]) if b[1:] else "") for b in blocks]
    return [" ".join(plain)] if plain else []


def _diagnostic(event: Mapping[str, Any]) -> str | None:
    diag = event.get("diagnostic") or {}
    if event.get("type") != "diagnostic" or diag.get("severity") != "error":
        return None
    # The validation rule's location is noise next to its message.
    detail = " ".join(str(diag.get("detail", "")).split("This was checked by")[0].split())
    return f"{diag.get('summary', '')}: {detail}" if detail else str(diag.get("summary", ""))


def _progress(event: Mapping[str, Any]) -> str | None:
    """Resource progress worth a line: creations, deletions, their completion; not data-source reads."""
    if event.get("type") not in ("apply_start", "apply_progress", "apply_complete", "apply_errored"):
        return None
    if event.get("hook", {}).get("action") == "read":
        return None
    return str(event.get("@message", ""))


class Interrupted(SwiftfleetError):
    """A Terraform command was stopped by the user (Ctrl-C); it finished what it had started first."""

    def __init__(self, command: str) -> None:
        self.command = command
        super().__init__(f"{command} interrupted")


@dataclass(frozen=True)
class Change:
    """One resource a saved plan would change: Terraform's actions, e.g. ("delete", "create") = replace."""

    address: str
    type: str
    index: Any  # count/for_each index, None for a single resource
    actions: tuple[str, ...]
    why: tuple[str, ...] = ()  # the attributes that force a replacement, else those that change

    def __str__(self) -> str:
        return f"{self.verb}: {self.address}" + (f" ({', '.join(self.why)})" if self.why else "")

    @property
    def verb(self) -> str:
        if "delete" in self.actions:
            return "replace" if "create" in self.actions else "destroy"
        return {"create": "create", "update": "update in place"}.get(self.actions[0], "/".join(self.actions))


def _why(resource_change: Mapping[str, Any]) -> tuple[str, ...]:
    change = resource_change["change"]
    if change.get("replace_paths"):
        return tuple(sorted({str(path[0]) for path in change["replace_paths"] if path}))
    before, after = change.get("before") or {}, change.get("after") or {}
    unknown = change.get("after_unknown") or {}
    return tuple(
        sorted(k for k in after if k in before and (after[k] != before[k] or unknown.get(k) is True))
    )


def _wait(proc: subprocess.Popen[str]) -> None:
    """Wait for a Terraform that was asked to stop; further Ctrl-C only say why the wait goes on."""
    while True:
        try:
            proc.wait()
            return
        except KeyboardInterrupt:
            print("swiftfleet: still waiting for Terraform to save its state", file=sys.stderr, flush=True)


class Workspace:
    """The Terraform module (paths.terraform_dir()) in the workspace of one cluster."""

    def __init__(self, name: str, working_dir: Path | None = None) -> None:
        self.name = name
        self.working_dir = working_dir or paths.terraform_dir()
        self._tf = Terraform(working_dir=str(self.working_dir))

    def _run(self, what: str, call: Callable[[], tuple[int, str, str]]) -> str:
        try:
            rc, out, err = call()
        except FileNotFoundError:
            raise SwiftfleetError("terraform is not on PATH: install Terraform >= 1.5") from None
        if rc != 0:
            raise TerraformError(what, error_lines(err))
        return out

    def init(self) -> None:
        plugin_dir = Path(os.environ.get(PLUGIN_DIR_ENV, DEFAULT_PLUGIN_DIR))
        options: dict[str, Any] = {"plugin_dir": str(plugin_dir)} if plugin_dir.is_dir() else {}
        self._run("init", lambda: self._tf.init(**options))

    def exists(self) -> bool:
        out = self._run("workspace list", lambda: self._tf.cmd("workspace list"))
        return self.name in {line.strip().removeprefix("* ") for line in out.splitlines()}

    def select(self) -> None:
        """Select the cluster's workspace, creating it on first use."""
        self._run("workspace select", lambda: self._tf.cmd("workspace select", self.name, or_create=True))

    def delete(self) -> None:
        """Delete the (emptied) workspace; Terraform refuses to delete the selected one, so leave it first."""
        self._run("workspace select", lambda: self._tf.cmd("workspace select", "default"))
        self._run("workspace delete", lambda: self._tf.delete_workspace(self.name))

    def apply(self, variables: Mapping[str, Any], progress: Callable[[str], None]) -> None:
        with _var_file(variables) as var_file:
            cmd = ["terraform", "apply", "-json", "-auto-approve", "-input=false", f"-var-file={var_file}"]
            errors = self._stream(cmd, progress)
        if errors is not None:
            raise TerraformError("apply", errors)

    def plan(self, variables: Mapping[str, Any], plan_file: Path) -> list[Change]:
        """Save the plan that would bring the workspace to `variables` and return its changes (no-ops left out);
        apply_plan() then does exactly what was shown, or nothing if the state moved since."""
        with _var_file(variables) as var_file:
            cmd = ["terraform", "plan", "-json", "-input=false", f"-var-file={var_file}", f"-out={plan_file}"]
            errors = self._stream(cmd, lambda _: None)
        if errors is not None:
            raise TerraformError("plan", errors)
        out = self._run("show", lambda: self._tf.cmd("show", str(plan_file), json=IsFlagged))
        return [
            Change(
                str(rc["address"]), str(rc["type"]), rc.get("index"), tuple(rc["change"]["actions"]), _why(rc)
            )
            for rc in json.loads(out).get("resource_changes", [])
            if rc.get("mode") == "managed" and rc["change"]["actions"] not in (["no-op"], ["read"])
        ]

    def apply_plan(self, plan_file: Path, progress: Callable[[str], None]) -> None:
        errors = self._stream(["terraform", "apply", "-json", "-input=false", str(plan_file)], progress)
        if errors is not None:
            raise TerraformError("apply", errors)

    def _stream(self, cmd: list[str], progress: Callable[[str], None]) -> list[str] | None:
        """Run a `-json` command, reporting progress as it comes; the error diagnostics if it fails, else None.

        Terraform runs in a session of its own, so a Ctrl-C at the terminal reaches only this process, which then
        asks Terraform once to stop: it finishes the operations under way and saves the state (a second signal
        would make it exit at once and lose what it created). Interrupted is raised once it has stopped."""
        try:
            proc = subprocess.Popen(
                cmd, cwd=self.working_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError:
            raise SwiftfleetError("terraform is not on PATH: install Terraform >= 1.5") from None
        stderr: list[str] = []
        # stderr is drained beside stdout so that neither pipe can fill up and stall Terraform.
        drain = threading.Thread(target=lambda: stderr.extend(proc.stderr or []), daemon=True)
        drain.start()
        errors: list[str] = []
        interrupted = False
        lines = iter(proc.stdout or [])
        while True:
            try:
                line = next(lines, None)
            except KeyboardInterrupt:
                if not interrupted:
                    interrupted = True
                    proc.send_signal(signal.SIGINT)
                progress(
                    "interrupted: Terraform finishes the operations under way and saves its state; waiting"
                )
                continue
            if line is None:
                break
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if (message := _progress(event)) is not None:
                progress(message)
            if (error := _diagnostic(event)) is not None:
                errors.append(error)
        _wait(proc)
        drain.join()
        if interrupted:
            raise Interrupted(" ".join(cmd[:2]))
        if proc.returncode == 0:
            return None
        # Errors found before Terraform starts its JSON view (bad flags, unreadable files) come as plain text.
        return errors or error_lines("".join(stderr))

    def destroy(
        self,
        variables: Mapping[str, Any],
        progress: Callable[[str], None] | None = None,
        targets: list[str] | None = None,
    ) -> None:
        """Destroy everything in the workspace, or only `targets` (resource addresses) and what depends on them."""
        with _var_file(variables) as var_file:
            cmd = [
                "terraform",
                "apply",
                "-destroy",
                "-json",
                "-auto-approve",
                "-input=false",
                f"-var-file={var_file}",
            ]
            errors = self._stream(cmd + [f"-target={t}" for t in targets or []], progress or (lambda _: None))
        if errors is not None:
            raise TerraformError("destroy", errors)

    def managed(self) -> set[str]:
        """The addresses of the resources the workspace's state holds (data sources left out)."""
        return {str(r["address"]) for r in self.resources() if r.get("mode") == "managed"}

    def resources(self) -> list[dict[str, Any]]:
        """What the workspace's state holds (managed resources and data sources): address, mode, values."""
        out = self._run("show", lambda: self._tf.cmd("show", json=IsFlagged))
        state = json.loads(out or "{}")
        return list(state.get("values", {}).get("root_module", {}).get("resources", []))

    def outputs(self) -> dict[str, Any]:
        """Output values by name; {} when the workspace holds nothing."""
        out = self._run("output", lambda: self._tf.output_cmd(json=IsFlagged))
        return {name: o["value"] for name, o in json.loads(out or "{}").items()}


@contextmanager
def _var_file(variables: Mapping[str, Any]) -> Iterator[Path]:
    """Variables as JSON: typed values (lists, bools, null) reach Terraform without quoting rules."""
    with tempfile.NamedTemporaryFile("w", suffix=".tfvars.json", prefix="swiftfleet-") as f:
        json.dump(variables, f)
        f.flush()
        yield Path(f.name)
