"""The Terraform wrapper: workspaces, and Terraform's errors reaching the user as one readable line."""

from pathlib import Path

import pytest

from swiftfleet import aws_cluster, tf
from tests.aws.conftest import FaultProxy, aws_spec

STDERR = """\
There are some problems with the CLI configuration:
╷
│ Warning: Unable to open CLI configuration file
│
│ The CLI configuration file at "/root/.terraformrc" does not exist.
╵


Error: Invalid value for variable

  on /tmp/swiftfleet-dzrkdptw.tfvars.json line 1:
   1: {"node_count": 0}
    ├────────────────
    │ var.node_count is 0

node_count must be a whole number from 1 to 64.

This was checked by the validation rule at variables.tf:35,3-13.

Error: No valid credential sources found

  with provider["registry.terraform.io/hashicorp/aws"],
  on versions.tf line 15, in provider "aws":
  15: provider "aws" {

Please see https://registry.terraform.io/providers/hashicorp/aws
for more information about providing credentials.
"""


def test_coloured_blocks_are_read_too() -> None:
    coloured = (
        '\x1b[31m╷\x1b[0m\n\x1b[31m│\x1b[0m \x1b[1m\x1b[31mError: \x1b[0mOutput "x" not found\x1b[0m\n'
        "\x1b[31m│\x1b[0m \n\x1b[31m│\x1b[0m The output variable could not be found.\n\x1b[31m╵\x1b[0m\n"
    )
    assert tf.error_lines(coloured) == ['Output "x" not found: The output variable could not be found.']


def test_error_lines_keep_summary_and_message_only() -> None:
    assert tf.error_lines(STDERR) == [
        "Invalid value for variable: node_count must be a whole number from 1 to 64.",
        "No valid credential sources found: Please see https://registry.terraform.io/providers/hashicorp/aws "
        "for more information about providing credentials.",
    ]


@pytest.fixture
def workspace(aws: FaultProxy, request: pytest.FixtureRequest) -> tf.Workspace:
    """A workspace of the copied module, with moto's fake account so the provider never looks elsewhere."""
    ws = tf.Workspace(f"sf-tf-{request.node.name[5:20].replace('_', '-')}")
    ws.init()
    return ws


@pytest.mark.moto
def test_workspace_lifecycle(workspace: tf.Workspace) -> None:
    assert not workspace.exists()
    workspace.select()
    assert workspace.exists()
    assert workspace.outputs() == {}
    assert workspace.resources() == []
    workspace.delete()
    assert not workspace.exists()


@pytest.mark.moto
def test_invalid_variables_fail_with_terraforms_message(
    workspace: tf.Workspace, ssh_key: Path, tmp_path: Path
) -> None:
    spec = aws_spec(tmp_path / "c.yml", ssh_key)
    bad = {**aws_cluster.variables(spec, "us-east-1a"), "deploy_port": 29500}
    workspace.select()
    # apply reads Terraform's JSON diagnostics.
    with pytest.raises(tf.TerraformError) as applied:
        workspace.apply(bad, progress=lambda _: None)
    assert str(applied.value) == (
        "terraform apply failed: Invalid value for variable: deploy_port must not lie in the rendezvous range "
        "29500-29600."
    )
    workspace.delete()
    # Workspace commands go through python-terraform and print a bare message on stderr, not an Error block.
    with pytest.raises(tf.TerraformError) as deleted:
        workspace.delete()
    assert str(deleted.value).startswith(
        f'terraform workspace delete failed: Workspace "{workspace.name}" doesn'
    )
