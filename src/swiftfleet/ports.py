"""The port rules that the cluster file, the job file and ms-swift's server arguments share.

terraform/variables.tf and network.tf hold the same numbers for the security group (Terraform cannot import them);
terraform/tests assert them there.
"""

# torchrun's MASTER_PORT range: the security group opens it between members; a job's master_port lies in it.
RENDEZVOUS = range(29500, 29601)
SSH = 22
UNPRIVILEGED = range(1024, 65536)


def server_port_problem(port: int) -> str | None:
    """Why a server (swift deploy, a rollout server) must not listen on `port`, or None."""
    if port == SSH:
        return f"{SSH} is SSH's port (open to admin_cidrs only)"
    if port not in UNPRIVILEGED:
        return f"{port} is outside {UNPRIVILEGED.start}-{UNPRIVILEGED.stop - 1} (below 1024 needs root)"
    if port in RENDEZVOUS:
        return (
            f"{port} lies in {RENDEZVOUS.start}-{RENDEZVOUS.stop - 1}, the torchrun rendezvous range (jobs' "
            "master_port): a server there takes the port a training job's rank 0 listens on"
        )
    return None
