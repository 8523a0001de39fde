"""Render a plan's per-node files locally, with the templates and filters the playbooks use (a dry run)."""

from pathlib import Path
from typing import Any

import jinja2

from swiftfleet import paths
from swiftfleet.filters import FILTERS
from swiftfleet.jobs.plan_model import JobPlan
from swiftfleet.jobs.spec import is_secret_name, token_kind

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


def render_node(job_plan: JobPlan, rank: int) -> dict[str, str]:
    """Destination path on the node -> rendered text, for every file the node of that rank gets."""
    return _render(job_plan.for_templates(), rank)


def _render(plain: dict[str, Any], rank: int) -> dict[str, str]:
    env = environment()
    node = next(n for n in plain["nodes"] if n["rank"] == rank)
    return {
        f["dest"]: env.get_template(f["template"]).render(job_plan=plain, job_node=node)
        for f in node["files"]
    }


def masked(job_plan: JobPlan) -> dict[str, Any]:
    """The plan's template form with every secret masked: the API key, and env values whose name looks like a
    secret's or which look like a token whatever their name (`HF_AUTH: hf_...`)."""
    plain = job_plan.for_templates()
    if plain["api_key"] is not None:
        plain["api_key"] = SECRET_MASK
    for env in (plain["env"], plain["prefetch_env"]):
        env.update({k: SECRET_MASK for k, v in env.items() if is_secret_name(k) or token_kind(v)})
    return plain


def render_all(job_plan: JobPlan, out: Path) -> list[Path]:
    """Write each node's files under out/rank<R>-<host>/, mirroring their absolute paths on the node.

    Secrets are masked: a dry run must not leave them in a directory made for reading.
    """
    shown = masked(job_plan)
    written = []
    for node in job_plan.nodes:
        base = out / f"rank{node.rank}-{node.host}"
        modes = {f.dest: int(f.mode, 8) for f in node.files}
        for dest, text in _render(shown, node.rank).items():
            path = base / dest.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(modes[dest])
            written.append(path)
    return written
