"""How setup.yml scales: 1 node vs N local nodes, with a cold and a warm package cache, and the re-run.

    .venv/bin/python bench/setup_bench.py [--nodes 1 4]

Each size gets its own cluster (own name, subnet, inventory and state in a temporary directory). The cache is
a fresh directory under the shared /var/cache/swiftfleet (the mount every local node has), so "cold" really
downloads everything and the user's cache is left alone:
  cold  = setup on new nodes with an empty cache;
  roles = the same again on the same nodes with every role run (setup_force; must change nothing);
  rerun = the same again as a user runs it: every node current, no role runs (the fingerprint path);
  warm  = setup on new nodes whose cache the cold run filled (--no-warm leaves it out).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from swiftfleet.inventory import inventory_path  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.roles.conftest import Run, ansible_playbook  # noqa: E402

CACHE_ROOT = Path("/var/cache/swiftfleet")


def setup(cluster: str, cache: Path, env: dict[str, str], force: bool = False) -> Run:
    extra = json.dumps({"swiftfleet_cache_dir": str(cache), "setup_force": force})
    result = ansible_playbook(
        "-i", str(inventory_path(cluster)), "-e", extra, str(REPO / "playbooks" / "setup.yml"), env=env
    )
    if result.rc != 0:
        raise SystemExit(f"setup.yml failed on {cluster}:\n{result.output[-4000:]}")
    return result


def changed_tasks(output: str) -> list[str]:
    """'task name: host' for every task that reported a change (why a re-run was not a no-op)."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[6:].split("]")[0]
        elif line.startswith("changed: ["):
            found.append(f"{task}: {line[10:].split(']')[0]}")
    return found


def cluster_cli(action: str, config: Path, env: dict[str, str]) -> None:
    res = run_cli("cluster", action, "--config", str(config), env=env, timeout=900)
    if res.returncode != 0:
        raise SystemExit(f"cluster {action} failed: {res.stdout}{res.stderr}")


def bench(nodes: int, index: int, work: Path, warm: bool) -> dict[str, float]:
    name = f"sfbench{nodes}"
    env = {"SWIFTFLEET_INVENTORY_DIR": str(work / "inventory"), "SWIFTFLEET_STATE_DIR": str(work / "state")}
    os.environ.update(env)  # inventory_path() reads them in this process too
    config = work / f"{name}.yml"
    spec = {"provider": "local", "name": name, "node_count": nodes, "subnet": f"172.31.{252 + index}.0/24"}
    config.write_text(yaml.safe_dump(spec))
    cache = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=CACHE_ROOT))
    figures: dict[str, float] = {}
    try:
        cluster_cli("up", config, env)
        figures["cold"] = setup(name, cache, env).seconds
        for kind, force in (("roles", True), ("rerun", False)):
            again = setup(name, cache, env, force)
            changed = sum(r["changed"] for r in again.recap().values())
            figures[kind] = again.seconds
            print(f"{nodes} node(s): {kind} {again.seconds:.1f} s (changed={changed})")
            if kind == "rerun" and "setup: nothing to do" not in again.output:
                print(
                    f"  not the fingerprint path: {[ln for ln in again.output.splitlines() if 'setup: ' in ln]}"
                )
        if warm:
            cluster_cli("down", config, env)
            cluster_cli("up", config, env)
            figures["warm"] = setup(name, cache, env).seconds
            print(f"{nodes} node(s): warm {figures['warm']:.0f} s")
    finally:
        cluster_cli("down", config, env)
        shutil.rmtree(cache, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--no-warm", dest="warm", action="store_false", help="leave out the warm-cache setup")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="setup-bench-") as tmp:
        results = {n: bench(n, i, Path(tmp), args.warm) for i, n in enumerate(args.nodes)}
    kinds = ["cold", "roles", "rerun"] + (["warm"] if args.warm else [])
    print("\n" + "  ".join([f"{'nodes':>5}", *(f"{k + ' s':>8}" for k in kinds)]))
    for n, f in results.items():
        print("  ".join([f"{n:>5}", *(f"{f[k]:>8.1f}" for k in kinds)]))
    if len(results) > 1:
        small, big = min(results), max(results)
        for kind in kinds:
            ratio = results[big][kind] / results[small][kind]
            print(f"{kind}: {big} nodes take {ratio:.2f}x the time of {small} (ideal parallel: 1.00x)")


if __name__ == "__main__":
    main()
