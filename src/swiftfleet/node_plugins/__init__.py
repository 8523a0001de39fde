"""Python files that go up with jobs and run on the nodes. Those that run inside ms-swift are never imported here
(they need torch); shard_rows.py is plain Python, and the plan uses it to count and split the rows it cuts."""

from pathlib import Path

# The ms-swift callback that saves a checkpoint when a spot interruption notice is posted (roles/spot_watch).
SAVE_ON_NOTICE = Path(__file__).with_name("save_on_notice.py")
SAVE_ON_NOTICE_CALLBACK = "swiftfleet_save_on_notice"  # the name save_on_notice.py registers
# A data-parallel job's share of the rows, cut out on each node before `swift infer` (jobs/plan.py Shares).
SHARD_ROWS = Path(__file__).with_name("shard_rows.py")
