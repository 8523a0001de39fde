"""Python files that go up with jobs and run inside ms-swift on the nodes; never imported here (they need torch)."""

from pathlib import Path

# The ms-swift callback that saves a checkpoint when a spot interruption notice is posted (roles/spot_watch).
SAVE_ON_NOTICE = Path(__file__).with_name("save_on_notice.py")
SAVE_ON_NOTICE_CALLBACK = "swiftfleet_save_on_notice"  # the name save_on_notice.py registers
