"""`swiftfleet nccl-test`: all_reduce_perf over every GPU of the cluster (playbooks/nccl_test.yml), or with
--dry-run the command only, rendered from the inventory without touching a host.

The playbook writes its result (<state>/<cluster>/nccl-test.json: the plan, the rendered command, the verdict);
this module runs it and turns that result into what the CLI prints and its exit code.
"""

import json
import os
import re
import subprocess
import sys
import uuid
from typing import Any

from swiftfleet import paths
from swiftfleet.check import ansible_playbook
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, group_name, inventory_path
from swiftfleet.nccl_plan import NcclTestPlan, NodeFacts, build

TEMPLATE = "nccl_test/run.sh.j2"


def render_script(plan: NcclTestPlan) -> str:
    """The command, rendered with the template and filters the playbook uses."""
    from swiftfleet.jobs.render import environment

    return environment().get_template(TEMPLATE).render(plan=plan.for_templates())


def dry_run(cluster: Cluster, binary: str | None = None) -> tuple[NcclTestPlan, str]:
    """The plan and command from the inventory alone (GPUs and EFA as the instance type has them)."""
    facts = [
        NodeFacts(
            host=n.name, rank=n.rank, private_ip=str(n.private_ip), user=n.ssh_user,
            inventory_gpus=n.gpu_count, instance_type=n.instance_type,
        )
        for n in cluster.nodes
    ]  # fmt: skip
    plan = build(cluster.name, facts, "dry-run", dry_run=True)
    if binary:
        plan = plan.model_copy(update={"binary": binary})
    return plan, render_script(plan)


def run(cluster: Cluster, timeout_s: int = 1800) -> dict[str, Any]:
    """Run the playbook; the result it wrote (plan, script, verdict). Raises when it wrote none."""
    state = paths.state_dir() / cluster.name
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    report, log_path = state / "nccl-test.json", state / "nccl-test.log"
    report.unlink(missing_ok=True)
    extra = {
        "nccl_group": group_name(cluster.name), "nccl_report": str(report), "nccl_run": uuid.uuid4().hex[:8],
        "nccl_timeout": timeout_s,
    }  # fmt: skip
    cmd = [
        ansible_playbook(), str(paths.playbooks_dir() / "nccl_test.yml"),
        "-i", str(inventory_path(cluster.name)), "-e", json.dumps(extra),
    ]  # fmt: skip
    print(f"nccl-test on {len(cluster.nodes)} node(s) of {cluster.name!r} (log: {log_path})", file=sys.stderr)
    env = {**os.environ, "ANSIBLE_CONFIG": str(paths.REPO_ROOT / "ansible.cfg")}
    with log_path.open("w") as log:
        proc = subprocess.run(
            cmd, cwd=paths.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if not report.is_file():
        text = log_path.read_text()
        # Every node unreachable: Ansible ends before the controller's play could say so.
        if lost := sorted(set(re.findall(r"^fatal: \[([^\]]+)\]: UNREACHABLE!", text, re.MULTILINE))):
            raise SwiftfleetError(f"nccl-test: no answer from {', '.join(lost)} (run `make check`)")
        tail = " | ".join(text.strip().splitlines()[-3:])
        raise SwiftfleetError(f"nccl-test playbook failed (rc {proc.returncode}) before its result: {tail}")
    result: dict[str, Any] = json.loads(report.read_text())
    result["rc"] = proc.returncode
    return result


def outcome(result: dict[str, Any]) -> tuple[list[str], str]:
    """(lines to print, the failure's one line or ""): the command, then the skip, the verdict or the refusal."""
    plan, verdict = result["plan"], result.get("verdict")
    if "error" in plan:
        return [], plan["error"]
    lines = [result["script"].rstrip("\n"), *(f"note: {n}" for n in plan["notes"])]
    if result.get("rc", 0) != 0 and verdict is None:
        return lines, f"nccl-test playbook failed (rc {result['rc']}) after its plan: see its log"
    if not plan["run"]:
        return [*lines, f"nccl-test: {plan['skip_reason']}"], ""
    if verdict is None:
        return lines, "nccl-test: the run did not finish (see the playbook's log)"
    if not verdict["ok"]:
        return lines, f"nccl-test failed: {verdict['line']}"
    lines.append(f"nccl-test: {verdict['line']}")
    if verdict["warning"]:
        lines.append(f"WARNING: {verdict['warning']}")
    return lines, ""
