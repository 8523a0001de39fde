"""Action swiftfleet_controller_file (controller only): write a text file on the controller, whole and atomically
(swiftfleet.controller_file). An action, not `copy` on localhost: it runs in the task's own worker, where copy
starts two module runs of their own (about 0.8 s of `swiftfleet check`).

Options: path (its directory must exist), content, mode (octal string, default "0600"). changed: the file did not
already hold that content with that mode. Check mode writes nothing.
"""

from ansible.plugins.action import ActionBase

from swiftfleet.controller_file import write

ARGS = {
    "path": {"type": "path", "required": True},
    "content": {"type": "str", "required": True},
    "mode": {"type": "str", "default": "0600"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGS)

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGS)
        try:
            mode = int(args["mode"], 8)
        except ValueError:
            return {
                **result,
                "failed": True,
                "msg": f"mode must be an octal string such as '0600', got {args['mode']!r}",
            }
        if self._task.check_mode:
            return {**result, "changed": False, "path": args["path"]}
        try:
            changed = write(args["path"], args["content"], mode)
        except OSError as error:
            return {**result, "failed": True, "msg": f"cannot write {args['path']}: {error}"}
        return {**result, "changed": changed, "path": args["path"]}
