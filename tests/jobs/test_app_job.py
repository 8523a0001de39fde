"""`swift app` and `swift web-ui` as services: on rank 0's loopback only (ms-swift's web UI has no authentication), health-checked
on its Gradio page, reached through the SSH tunnel deploy.yml prints; what would open it to a network is refused."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import needs, plan, render, spec
from swiftfleet.jobs.plan_model import JobPlan


def _plan(tmp_path: Path, **job: Any) -> JobPlan:
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    fields = {"name": "chat-ui", "kind": "swift app", "model": str(tmp_path / "model"), **job}
    return plan.build(spec.parse_job({"job": fields}, "job"), plan.hypothetical_nodes(2), "job")


def test_the_app_listens_on_the_node_loopback_and_is_health_checked_on_its_page(tmp_path: Path) -> None:
    job_plan = _plan(tmp_path, args={"studio_title": "tiny", "server_port": 7870})
    assert (job_plan.playbook, job_plan.port, job_plan.health, job_plan.tunnel) == ("deploy", 7870, "/", True)
    assert [n.rank for n in job_plan.nodes] == [0] and job_plan.output.mode is None
    cfg = yaml.safe_load(render.render_node(job_plan, 0)[f"{job_plan.nodes[0].job_dir}/config.yaml"])
    # The UI and the model server it starts for itself both stay on the node's 127.0.0.1.
    assert (cfg["server_name"], cfg["host"], cfg["server_port"]) == ("127.0.0.1", "127.0.0.1", 7870)
    unit = render.render_node(job_plan, 0)[f"/etc/systemd/system/{job_plan.nodes[0].unit}"]
    assert "a Gradio UI on 127.0.0.1:7870" in unit and "Restart=on-failure" in unit
    assert _plan(tmp_path).port == 7860  # Gradio's default
    assert needs.job_needs("swift app", {}, "m") == ["app"]  # gradio, from the ms_swift role's table


@pytest.mark.parametrize(
    ("job", "where", "message"),
    [
        ({"args": {"server_name": "0.0.0.0"}}, "args.server_name", "reached only through the SSH tunnel"),
        ({"args": {"share": True}}, "args.share", "gradio.live link would open the UI to the internet"),
        ({"args": {"host": "0.0.0.0"}}, "args.host", "listens on 127.0.0.1 on its node"),
        ({"output": "fetch"}, "output", "`swift app` job is a service"),
        ({"time_limit": "2h"}, "time_limit", "runs until stop.yml"),
        ({"nodes": 2}, "nodes", "runs on one node"),
        ({"args": {"server_port": "web"}}, "args.server_port", "web"),
    ],
)
def test_what_the_app_refuses_is_one_line(
    tmp_path: Path, job: dict[str, Any], where: str, message: str
) -> None:
    with pytest.raises(SwiftfleetError) as err:
        _plan(tmp_path, **job)
    text = str(err.value)
    assert text.startswith(f"job: {where}: ") and message in text and "\n" not in text, text


@pytest.mark.parametrize("port", [22, 80, 29500, 70000])
def test_a_port_the_ui_cannot_or_must_not_take_is_refused(tmp_path: Path, port: int) -> None:
    with pytest.raises(SwiftfleetError, match=rf"^job: args.server_port: {port}.*1024-65535"):
        _plan(tmp_path, args={"server_port": port})


def test_the_web_ui_takes_no_model_and_listens_on_the_node_loopback(tmp_path: Path) -> None:
    job = spec.parse_job({"job": {"name": "ui", "kind": "swift web-ui", "args": {"lang": "en"}}}, "job")
    job_plan = plan.build(job, plan.hypothetical_nodes(2), "job")
    assert (job_plan.playbook, job_plan.port, job_plan.health, job_plan.tunnel) == ("deploy", 7860, "/", True)
    assert job_plan.config == {"lang": "en", "server_name": "127.0.0.1", "server_port": 7860}
    files = render.render_node(job_plan, 0)
    assert 'exec "$swift_env/bin/swift" web-ui config.yaml' in files[f"{job_plan.nodes[0].job_dir}/run.sh"]
    for field, value in (("model", str(tmp_path)), ("checkpoint", "./ckpt")):
        with pytest.raises(
            SwiftfleetError, match=rf"^job: {field}: the web UI picks its models in the browser"
        ):
            spec.parse_job({"job": {"name": "ui", "kind": "swift web-ui", field: value}}, "job")
    with pytest.raises(SwiftfleetError, match=r"^job: model: `swift sft` needs a model"):
        spec.parse_job({"job": {"name": "x", "kind": "swift sft", "datasets": ["a/b"]}}, "job")
    with pytest.raises(
        SwiftfleetError, match=r"^job: args.share: not allowed here: a public gradio.live link"
    ):
        spec.parse_job({"job": {"name": "ui", "kind": "swift web-ui", "args": {"share": True}}}, "job")
