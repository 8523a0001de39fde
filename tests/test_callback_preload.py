"""callback_plugins/swiftfleet_preload: every ansible-playbook run of the kit loads the filter plugins once in its
main process (forked task workers inherit them), even when the user picks other callbacks."""

from pathlib import Path

from tests.roles.conftest import ansible_playbook


def test_filters_are_loaded_before_the_first_task_whatever_callbacks_are_enabled(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: \"rank0 {{ {'a': 1} | swiftfleet_cli_flags }}\"\n"
    )
    run = ansible_playbook(
        "-vvv", str(playbook), env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    )
    assert run.rc == 0, run.output[-2000:]
    preload = [line for line in run.output.splitlines() if line.startswith("swiftfleet_preload: ")]
    assert len(preload) == 1 and preload[0].endswith("plugin files loaded"), run.output[:3000]
    filters = int(preload[0].split()[1])
    assert filters > 1, preload  # ansible's own files and the kit's
    assert run.output.index(preload[0]) < run.output.index("TASK [ansible.builtin.debug]")
    assert '"msg": "rank0 --a 1"' in run.output
