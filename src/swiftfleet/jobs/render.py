"""Render a plan's per-node files locally, with the templates and filters the playbooks use (a dry run)."""

from pathlib import Path
from typing import Any

import jinja2

from swiftfleet import paths
from swiftfleet.filters import FILTERS

SECRET_MASK = "********"


def environment() -> jinja2.Environment:
    # The settings of Ansible's template module (trim_blocks on, trailing newline kept), so both render alike.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths.REPO_ROOT / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    return env


def render_node(job_plan: dict[str, Any], job_node: dict[str, Any]) -> dict[str, str]:
    """Destination path on the node -> rendered text, for every file the node gets."""
    env = environment()
    return {
        f["dest"]: env.get_template(f["template"]).render(job_plan=job_plan, job_node=job_node)
        for f in job_node["files"]
    }


def render_all(job_plan: dict[str, Any], out: Path) -> list[Path]:
    """Write each node's files under out/rank<R>-<host>/, mirroring their absolute paths on the node.

    The API key is masked: a dry run must not leave the secret in a directory made for reading.
    """
    shown = {**job_plan, "api_key": SECRET_MASK if job_plan["api_key"] is not None else None}
    written = []
    for node in job_plan["nodes"]:
        base = out / f"rank{node['rank']}-{node['host']}"
        modes = {f["dest"]: int(f["mode"], 8) for f in node["files"]}
        for dest, text in render_node(shown, node).items():
            path = base / dest.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(modes[dest])
            written.append(path)
    return written
