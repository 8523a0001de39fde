"""Jobs: the job file (spec), its checks against the pinned ms-swift (ms_swift_args) and the cluster (plan,
sizing), and the per-node files rendered from templates/job (render). The playbooks use the same plan through
the `swiftfleet_job_plan` filter."""
