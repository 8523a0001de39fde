"""The port rules that the cluster file, the job file and ms-swift's server arguments share.

terraform/variables.tf and network.tf hold the same numbers for the security group (Terraform cannot import them);
terraform/tests assert them there.
"""

import zlib

# torchrun's MASTER_PORT range: the security group opens it between members; a job's master_port lies in it.
RENDEZVOUS = range(29500, 29601)
# Staging: rank 0 serves a job's uploads to the job's other nodes (rsync daemon) on one of these while they copy.
# Reached between members only (the intra-group rule); above the rendezvous range (a running job's master_port)
# and below Linux's ephemeral ports (32768-, where NCCL's sockets are).
STAGING = range(29601, 29700)
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
    if port in STAGING:
        return (
            f"{port} lies in {STAGING.start}-{STAGING.stop - 1}, where rank 0 serves a job's uploads to the other "
            "nodes while it is staged"
        )
    return None


def staging_port(job: str) -> int:
    """The port rank 0 serves `job`'s uploads on: fixed per job name, so two jobs staged at once rarely meet."""
    return STAGING.start + zlib.crc32(job.encode()) % len(STAGING)
