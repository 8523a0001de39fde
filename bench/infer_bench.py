"""`swift infer` over 400 rows on 1 and on 2 local nodes: rows per second, wall time and CPU-seconds.

    .venv/bin/python bench/infer_bench.py [--rows 400] [--nodes 1 2] [--threads N]

Each size gets its own local cluster, set up with setup.yml, then runs infer.yml (the tiny model, transformers
backend, 8 new tokens a row) once. Figures per size: the whole infer.yml (plan, staging, units, watch, fetch and
join), rows/s over it, ms-swift's own samples/s summed over the nodes (model loading excluded), and the CPU-seconds
of the controller and of the nodes. Local nodes share this machine's cores: two nodes cannot run twice as fast here,
and the CPU-seconds show whether the work itself grew. --threads N gives each node's process N threads
(OMP_NUM_THREADS), so that N x nodes <= cores compares sizes as a fleet would (each node its own processors);
without it torch takes every core on every node. Needs the controller ms-swift (.venv-swift).
"""

import argparse
import ast
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cpu_meter import CpuMeter, between, container_group  # noqa: E402
from bench.train_start_bench import bench_env, job_file, play, up_and_set_up  # noqa: E402
from swiftfleet import local_cluster  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.e2e.conftest import CPU_ARGS  # noqa: E402
from tests.jobs.conftest import MAKE_TINY, SWIFT_PYTHON  # noqa: E402


def swift_samples_per_second(name: str, nodes: int) -> float:
    """The samples/s each node's ms-swift printed at its end ({'num_prompt_tokens': ..., 'samples/s': ...})."""
    total = 0.0
    for rank in range(nodes):
        log = subprocess.run(
            ["docker", "exec", local_cluster.container_name(name, rank), "cat",
             f"/root/swiftfleet/jobs/bench-infer/rank{rank}.log"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        line = next(x for x in reversed(log.splitlines()) if "'samples/s'" in x)
        total += float(ast.literal_eval(line[line.index("{") :])["samples/s"])
    return total


def bench_size(
    nodes: int, rows: Path, count: int, root: Path, tiny: Path, threads: int | None
) -> dict[str, float]:
    name = f"sfbinfer{nodes}"
    env = bench_env(root)
    meter = CpuMeter()
    try:
        up_and_set_up(name, nodes, f"172.31.{226 + nodes}.0/24", root, env, [])
        ids = subprocess.run(
            ["docker", "inspect", "-f", "{{.Id}}", *(local_cluster.container_name(name, r) for r in range(nodes))],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        meter.node_groups = [container_group(i) for i in ids]
        job = job_file(root, name="bench-infer", kind="swift infer", model=str(tiny / "model"),
                       val_datasets=[str(rows)],
                       env={"CUDA_VISIBLE_DEVICES": "", **({"OMP_NUM_THREADS": str(threads)} if threads else {})},
                       args={**CPU_ARGS, "infer_backend": "transformers", "max_new_tokens": 8,
                             "write_batch_size": 50})  # fmt: skip
        before = meter.sample()
        run = play(name, "infer.yml", job, env)
        spent = between(before, meter.sample())
        answered = len(
            (root / "outputs" / "bench-infer" / "output" / "result.jsonl").read_text().splitlines()
        )
        if answered != count:
            sys.exit(f"{nodes} node(s): {answered} answers to {count} rows")
        return {"wall": run.seconds, "rows/s": count / run.seconds, "swift rows/s": swift_samples_per_second(name, nodes),
                "controller cpu": spent.controller, "node cpu": spent.nodes}  # fmt: skip
    finally:
        run_cli("cluster", "down", "--config", str(root / f"{name}.yml"), env=env)
        meter.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of each node's swift infer")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sfbench-infer-") as tmp:
        root = Path(tmp)
        subprocess.run(
            [str(SWIFT_PYTHON), str(MAKE_TINY), str(root / "tiny")], check=True, capture_output=True
        )
        chat = (root / "tiny" / "chat.jsonl").read_text().splitlines()
        rows = root / "rows.jsonl"
        rows.write_text("".join(chat[i % len(chat)] + "\n" for i in range(opts.rows)))
        results = {}
        for nodes in opts.nodes:
            results[nodes] = bench_size(nodes, rows, opts.rows, root, root / "tiny", opts.threads)
            print(f"{nodes} node(s): {json.dumps(results[nodes])}", flush=True)
    from swiftfleet.table import render

    keys = ["wall", "rows/s", "swift rows/s", "controller cpu", "node cpu"]
    print(render(["nodes", *keys], [[n, *(f"{r[k]:.1f}" for k in keys)] for n, r in results.items()]))
    if len(results) == 2:
        (a, ra), (b, rb) = results.items()
        print(f"{b} vs {a} node(s): rows/s x{rb['rows/s'] / ra['rows/s']:.2f} over infer.yml, "
              f"x{rb['swift rows/s'] / ra['swift rows/s']:.2f} by ms-swift's count; "
              f"node CPU-seconds x{rb['node cpu'] / ra['node cpu']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
