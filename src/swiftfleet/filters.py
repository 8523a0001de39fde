"""The Jinja2 filters of the kit: one module for both `swiftfleet render` and Ansible (filter_plugins/swiftfleet.py
only re-exports FILTERS), so a template renders the same in both."""

import json
import os
import shlex
from typing import Any

import yaml


def _plain(data: Any) -> Any:
    """Plain dicts, lists and scalars: Ansible passes lazy, tagged subclasses that safe_dump and pydantic refuse."""
    return json.loads(json.dumps(data))


def to_yaml(data: Any) -> str:
    return yaml.safe_dump(
        _plain(data), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )


def env_quote(value: Any) -> str:
    """A double-quoted value that POSIX sh and systemd's EnvironmentFile both read back unchanged."""
    text = str(value)
    if "\n" in text or "\0" in text:
        raise ValueError("environment values must be one line")
    for ch in ("\\", '"', "$", "`"):
        text = text.replace(ch, "\\" + ch)
    return f'"{text}"'


def shell_quote(value: Any) -> str:
    return shlex.quote(str(value))


def cli_flags(args: dict[str, Any]) -> str:
    """`--key value` flags, shell-quoted, converted the way ms-swift converts a YAML config (lists spread out,
    mappings as JSON), so the line is the config file's exact equivalent."""
    parts: list[str] = []
    for key, value in _plain(args).items():
        parts.append(f"--{key}")
        if isinstance(value, list):
            parts += [shell_quote(v) for v in value]
        elif isinstance(value, dict):
            parts.append(shell_quote(json.dumps(value, ensure_ascii=False)))
        else:
            parts.append(shell_quote(value))
    return " ".join(parts)


def job_plan(job: Any, hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """`job | swiftfleet_job_plan(groups[g] | map('extract', hostvars) | list)` in a playbook: the same checks and
    plan as `swiftfleet render`, from the setup record of the cluster's nodes (required: a run never guesses
    where the stack is). A bad job gives {"error": its one line}: the task that keeps the plan has no_log (the
    plan may hold an API key), which would hide a raised message."""
    from swiftfleet.errors import SwiftfleetError
    from swiftfleet.jobs import plan, spec

    # hostvars are lazy mappings of everything Ansible knows: keep the keys the plan reads.
    picked = [{k: h[k] for k in plan.HOST_KEYS if k in h} for h in hosts]
    plain_job, plain_hosts = _plain([job, picked])
    try:
        checked = spec.parse_job({"job": plain_job}, "job")
        nodes = plan.nodes_from_hostvars(plain_hosts)
        cluster = str(hosts[0]["swiftfleet_cluster"]) if hosts else None
        facts = plan.facts_for(cluster, nodes, required=True)
        return plan.build(checked, nodes, "job", facts).for_templates()
    except SwiftfleetError as exc:
        return {"error": str(exc)}


def facts_file(cluster: str) -> str:
    """`swiftfleet_cluster | swiftfleet_facts_file`: where setup.yml saves the nodes' setup record."""
    from swiftfleet.jobs import node_facts

    return str(node_facts.facts_file(cluster))


def lock(cluster: str, command: str) -> str:
    """`cluster | swiftfleet_lock(command)`: take the cluster's lock for this ansible-playbook run; "" when taken,
    else the one line naming its holder. Filters run in a worker process forked from ansible-playbook, so the
    holder is the worker's parent: the lock ends with the playbook, however it ends."""
    from swiftfleet import lock as cluster_lock
    from swiftfleet.errors import SwiftfleetError

    try:
        cluster_lock.acquire(cluster, command, pid=os.getppid())
    except SwiftfleetError as exc:
        return str(exc)
    return ""


def operator(_: Any = None) -> str:
    """`'' | swiftfleet_operator`: user@host of whoever runs this ansible-playbook (swiftfleet.lock.operator)."""
    from swiftfleet import lock as cluster_lock

    return cluster_lock.operator()


def setup_fingerprint(host_vars: Any, roles: list[str], controller_files: list[str] | None = None) -> str:
    """`hostvars[inventory_hostname] | swiftfleet_setup_fingerprint(setup_roles, ca_files)`: the hash of what
    this host's setup depends on (swiftfleet.setup_fingerprint)."""
    from swiftfleet import setup_fingerprint as fp

    return fp.fingerprint(host_vars, [str(r) for r in roles], [str(f) for f in controller_files or []])


def table(rows: list[list[Any]], head: list[str]) -> str:
    """`rows | swiftfleet_table(head)`: the CLI's plain-text table, for the playbooks' reports."""
    from swiftfleet.table import render

    return render(head, _plain(rows))


def rows_done(counted_share: Any, verb: str) -> str:
    """`[counted, [lo, hi]] | swiftfleet_rows_done(verb)`: a data-parallel rank's progress for the status table."""
    counted, (lo, hi) = counted_share
    return f"{counted}/{hi - lo} rows {verb}; "


def torch_build(nvidia_smi_output: str, torch_version: str) -> dict[str, Any]:
    """`smi.stdout | swiftfleet_torch_build(torch_version)`: the torch CUDA build for a GPU node, from the
    compatibility table (swiftfleet.stack.choose_torch_build); `error` is one line, "" when a build fits."""
    from swiftfleet import stack

    return stack.choose_torch_build(str(nvidia_smi_output), str(torch_version))


def stack_view(name: str) -> Any:
    """`'<name>' | swiftfleet_stack`: what the roles read from the compatibility table. `cuda_driver_minimum`
    (CUDA release -> minimum driver), or a package name for its pin (version, or apex's commit)."""
    from swiftfleet import stack

    if name == "cuda_driver_minimum":
        return stack.driver_minimum()
    return stack.pin(str(name))


def resolve_extras(extra_map: Any) -> dict[str, dict[str, Any]]:
    """`ms_swift_extra_map | swiftfleet_resolve_extras`: the map with its table pins filled in, as
    swiftfleet.jobs.needs reads it."""
    from swiftfleet import stack

    return stack.resolve_extras(_plain(extra_map))


def wheel_plan(builds: Any, node_stack: Any) -> list[dict[str, Any]]:
    """`wheel_cache_builds | swiftfleet_wheel_plan(probe)`: each build with its cache key (swiftfleet.wheel_cache)."""
    from swiftfleet import wheel_cache

    return wheel_cache.plan(_plain(builds), _plain(node_stack))


def wheel_lookup(items: Any, cache_dir: str) -> list[dict[str, Any]]:
    """`plan | swiftfleet_wheel_lookup(cache_dir)`: each item with its controller cache entry under `cache`
    (hit, missing, partial or corrupt; a hit's wheel is checked against its recorded sha256)."""
    from swiftfleet import wheel_cache

    return [{**item, "cache": wheel_cache.lookup(str(cache_dir), item["key"])} for item in _plain(items)]


def wheel_builds(host: str, plans: Any) -> list[dict[str, Any]]:
    """`inventory_hostname | swiftfleet_wheel_builds(host_plan_pairs)`: the builds this host does, one host per
    missing key."""
    from swiftfleet import wheel_cache

    return wheel_cache.builds_for(str(host), [(str(h), items) for h, items in _plain(plans)])


def wheel_entry(item: Any, wheel: str, sha256: str, host: str) -> dict[str, Any]:
    """`item | swiftfleet_wheel_entry(wheel, sha256, host)`: the cache entry's entry.json."""
    from swiftfleet import wheel_cache

    return wheel_cache.entry(_plain(item), str(wheel), str(sha256), str(host))


def nccl_test_plan(hosts: list[dict[str, Any]], cluster: str, run_id: str) -> dict[str, Any]:
    """`facts | swiftfleet_nccl_test_plan(cluster, run_id)` in playbooks/nccl_test.yml: the typed plan of the NCCL
    test (swiftfleet.nccl_plan) from what the playbook found on every node; {"error": its one line} when a run
    would not be honest."""
    from swiftfleet import nccl_plan
    from swiftfleet.errors import SwiftfleetError

    try:
        facts = [nccl_plan.NodeFacts(**h) for h in _plain(hosts)]
        return nccl_plan.build(str(cluster), facts, str(run_id)).for_templates()
    except SwiftfleetError as exc:
        return {"error": str(exc)}
    except ValueError as exc:  # pydantic's ValidationError: e.g. swiftfleet_gpu neither auto, true nor false
        return {"error": f"nccl-test: a node's facts do not fit the plan: {' '.join(str(exc).split())[:300]}"}


def nccl_verdict(output: str, rc: int, plan: dict[str, Any]) -> dict[str, Any]:
    """`log | swiftfleet_nccl_verdict(rc, plan)`: all_reduce_perf's output judged (swiftfleet.nccl_bandwidth)."""
    from swiftfleet import nccl_bandwidth

    plain = _plain(plan)
    return nccl_bandwidth.verdict(
        str(output), int(rc), bool(plain["efa"]), str(plain["instance_type"]), len(plain["nodes"])
    ).model_dump()


FILTERS = {
    "swiftfleet_to_yaml": to_yaml,
    "swiftfleet_env_quote": env_quote,
    "swiftfleet_shell_quote": shell_quote,
    "swiftfleet_cli_flags": cli_flags,
    "swiftfleet_job_plan": job_plan,
    "swiftfleet_table": table,
    "swiftfleet_rows_done": rows_done,
    "swiftfleet_facts_file": facts_file,
    "swiftfleet_lock": lock,
    "swiftfleet_operator": operator,
    "swiftfleet_setup_fingerprint": setup_fingerprint,
    "swiftfleet_torch_build": torch_build,
    "swiftfleet_stack": stack_view,
    "swiftfleet_resolve_extras": resolve_extras,
    "swiftfleet_nccl_test_plan": nccl_test_plan,
    "swiftfleet_nccl_verdict": nccl_verdict,
    "swiftfleet_wheel_plan": wheel_plan,
    "swiftfleet_wheel_lookup": wheel_lookup,
    "swiftfleet_wheel_builds": wheel_builds,
    "swiftfleet_wheel_entry": wheel_entry,
}
