"""Action swiftfleet_stage_tree (controller only): lay out a job's uploads as links under one directory, for one
rsync to rank 0 (swiftfleet.jobs.stage_tree). An action, not a module: it runs in the task's own worker, where a
module on localhost would start a Python of its own (about 0.4 s of every job start).

Options: path (the plan's staging.tree), uploads (the plan's uploads: src on the controller, dest in the job
directory). A scratch layout, rebuilt every time: reports changed=false.
"""

from ansible.plugins.action import ActionBase

from swiftfleet.jobs.stage_tree import lay_out

ARGS = {
    "path": {"type": "path", "required": True},
    "uploads": {"type": "list", "elements": "dict", "required": True},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGS)

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGS)
        if not self._task.check_mode:
            lay_out(args["path"], args["uploads"])
        result.update(changed=False, path=args["path"])
        return result
