"""An ms-swift callback shipped with HF-Trainer training jobs (swift sft, pt, rlhf) as an external plugin: when a
node's spot watch (roles/spot_watch) posts an EC2 interruption notice in /run/swiftfleet/save-now, every rank
saves checkpoint-N together at the end of the current step, once per notice. Megatron kinds do not get it (their
trainer has its own callback table and save path).

Each node gets its own notice, so the ranks agree first: a 1-element all_reduce (MAX) at every step end, on every
rank, says whether any node has a new notice. A save on some ranks only would hang the collective save.

Training then goes on: the notice is a warning about two minutes ahead, a `stop` or `hibernate` keeps the disk,
and a job that ended itself here would look finished to train.yml. `resume: latest` takes it up from this save.
"""

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from swift.callbacks import TrainerCallback, callbacks_map

NAME = "swiftfleet_save_on_notice"  # swiftfleet.node_plugins.SAVE_ON_NOTICE_CALLBACK
FLAG = Path("/run/swiftfleet/save-now")  # the spot watch's FLAG


def _notice() -> str | None:
    try:
        return FLAG.read_text()
    except OSError:
        return None


class SaveOnNotice(TrainerCallback):  # type: ignore[misc]  # ms-swift is not in the controller's environment
    def __init__(self, args: Any, trainer: Any) -> None:
        super().__init__(args, trainer)
        self.saved_for: str | None = None  # the notice this rank last saved for

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        notice = _notice()
        new = torch.tensor([int(notice is not None and notice != self.saved_for)], device=args.device)
        mine = bool(new.item())
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(new, op=dist.ReduceOp.MAX)
        if new.item():
            control.should_save = True
            # Read again: a notice written between two ranks' reads on this node is the one just saved for.
            self.saved_for = _notice()
            where = f"on this node: {notice.strip()}" if mine and notice else "on another node"
            print(
                f"swiftfleet: spot interruption notice {where}; saving checkpoint-{state.global_step}",
                flush=True,
            )
        return control


callbacks_map[NAME] = SaveOnNotice
