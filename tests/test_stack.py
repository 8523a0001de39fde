"""The compatibility table (src/swiftfleet/data/stack.yml) and the torch build a GPU node gets from it.

The nvidia-smi outputs are small files under tests/data/nvidia-smi (drivers 535, 570, 580 and 595); the same
function answers Python and the roles (the `swiftfleet_torch_build` filter), which the last tests check through
ansible-playbook itself.
"""

import json
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

from swiftfleet import filters, stack
from swiftfleet.jobs import needs
from tests.conftest import REPO
from tests.roles.conftest import ansible_playbook

SMI = REPO / "tests" / "data" / "nvidia-smi"
TORCH = yaml.safe_load((REPO / "roles" / "ms_swift" / "defaults" / "main.yml").read_text())[
    "ms_swift_torch_version"
]

# driver file -> (driver, backend, CUDA torch reports, CUDA builds the driver runs); None: refused.
EXPECTED: dict[str, tuple[str, str, str, list[str]] | None] = {
    "driver-535.txt": None,
    "driver-570.txt": ("570.172.08", "cu126", "12.6", ["12.6"]),
    "driver-580.txt": ("580.95.05", "cu130", "13.0", ["12.6", "13.0"]),
    "driver-595.txt": ("595.58.03", "cu132", "13.2", ["12.6", "13.0", "13.2"]),
}


def _smi(name: str) -> str:
    return (SMI / name).read_text()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_newest_build_the_driver_runs_is_chosen(name: str) -> None:
    expected = EXPECTED[name]
    choice = stack.choose_torch_build(_smi(name), TORCH)
    if expected is None:
        assert choice["backend"] == "" and choice["accepted"] == [] and choice["error"]
        return
    driver, backend, cuda, accepted = expected
    assert choice == {
        "torch": TORCH,
        "driver": driver,
        "cuda": cuda,
        "backend": backend,
        "accepted": accepted,
        "error": "",
    }


def test_a_driver_too_old_for_every_build_is_refused_in_one_line() -> None:
    error = stack.choose_torch_build(_smi("driver-535.txt"), TORCH)["error"]
    assert error == (
        "NVIDIA driver 535.230.02 is too old for torch 2.13.0: its CUDA builds (cu126, cu130, cu132) need "
        "driver >= 560.28.03 at least (CUDA 12.6)"
    )
    assert "\n" not in error


def test_every_cuda_release_torch_can_report_is_one_the_cuda_role_accepts() -> None:
    """The cuda role's releases are the table's: each build of the pinned torch has its driver minimum, and the
    role's own default is one of them."""
    minimum = stack.driver_minimum()
    assert set(stack.torch_cuda_builds(TORCH)) <= set(minimum)
    assert {"13.0", "13.2"} <= set(minimum)
    cuda_default = yaml.safe_load((REPO / "roles" / "cuda" / "defaults" / "main.yml").read_text())[
        "cuda_version"
    ]
    assert cuda_default in minimum
    for release, driver in minimum.items():
        Version(release), Version(driver)  # both parse


def test_every_row_names_its_source() -> None:
    table = stack.table()
    rows = [*table["torch"].values(), *table["cuda"].values(), *table["packages"].values()]
    assert all(str(row.get("source", "")).strip() for row in rows)
    # what could not be checked is marked so; the 13.2 minimum is the GA driver of NVIDIA's table, not a branch
    assert "unconfirmed" in table["packages"]["transformer-engine"]["source"]
    assert "RELEASE.md" in table["torch"][TORCH]["source"]
    assert table["cuda"]["13.2"]["driver"] == "595.45.04"


def test_driver_version_reads_query_lines_and_the_banner_and_refuses_garbage() -> None:
    assert stack.driver_version("580.65.06\n575.51.03\n") == "575.51.03"  # GPUs disagree: the lowest
    assert stack.driver_version(_smi("driver-580.txt")) == "580.95.05"
    choice = stack.choose_torch_build("NVIDIA-SMI has failed because it couldn't communicate", TORCH)
    assert choice["error"].startswith(
        "no NVIDIA driver version in nvidia-smi's output (NVIDIA-SMI has failed"
    )
    assert stack.choose_torch_build("", TORCH)["error"].endswith("(nothing)")


def test_a_torch_without_a_row_is_refused() -> None:
    assert stack.choose_torch_build(_smi("driver-595.txt"), "2.99.0")["error"].startswith(
        "torch 2.99.0 has no row in stack.yml (known: 2.13.0"
    )


def test_the_roles_pins_come_from_the_table() -> None:
    """deepspeed, vllm, megatron-core and flash-attn reach the role and swiftfleet.jobs.needs resolved the same way;
    TE and apex through the `swiftfleet_stack` filter their defaults call."""
    extras = needs.extra_table()
    assert extras["deepspeed"]["packages"] == [f"deepspeed=={stack.pin('deepspeed')}"]
    assert extras["vllm"]["packages"] == [f"vllm=={stack.pin('vllm')}"]
    assert extras["megatron"]["packages"][0] == f"megatron-core=={stack.pin('megatron-core')}"
    assert extras["flash-attn"]["compiled"] == [f"flash-attn=={stack.pin('flash-attn')}"]
    assert not any(k.startswith("stack_") for entry in extras.values() for k in entry)
    assert Version(stack.pin("deepspeed")) < Version("0.19")  # ms-swift's install_all.sh: deepspeed<0.19
    assert len(stack.pin("apex")) == 40
    te = (REPO / "roles" / "transformer_engine" / "defaults" / "main.yml").read_text()
    assert "'transformer-engine' | swiftfleet_stack" in te
    assert "'apex' | swiftfleet_stack" in (REPO / "roles" / "apex" / "defaults" / "main.yml").read_text()
    assert filters.FILTERS["swiftfleet_stack"]("cuda_driver_minimum") == stack.driver_minimum()


PLAY = """\
- name: The filters the roles use, as Ansible runs them
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Print the choices and pins
      ansible.builtin.debug:
        msg: "{{ {'choices': smi | map('swiftfleet_torch_build', torch) | list,
                  'te': 'transformer-engine' | swiftfleet_stack,
                  'extras': ms_swift_extra_map | swiftfleet_resolve_extras} | to_json }}"
"""


def test_ansible_gets_the_same_answers(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    extra_map = yaml.safe_load((REPO / "roles" / "ms_swift" / "vars" / "main.yml").read_text())[
        "ms_swift_extra_map"
    ]
    names = sorted(EXPECTED)
    extra = tmp_path / "vars.json"
    extra.write_text(
        json.dumps({"smi": [_smi(n) for n in names], "torch": TORCH, "ms_swift_extra_map": extra_map})
    )
    result = ansible_playbook("-i", "localhost,", "-e", f"@{extra}", str(playbook))
    assert result.rc == 0, result.output[-3000:]
    shown = result.output.split('"msg": ', 1)[1].rsplit("}", 1)[0]
    answer = json.loads(json.loads(shown))
    assert answer["choices"] == [stack.choose_torch_build(_smi(n), TORCH) for n in names]
    assert answer["te"] == stack.pin("transformer-engine")
    assert answer["extras"] == needs.extra_table()
