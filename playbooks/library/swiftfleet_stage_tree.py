#!/usr/bin/python
"""Ansible module (controller side): a job's uploads as one tree of links, named as the job directory wants them."""

DOCUMENTATION = r"""
module: swiftfleet_stage_tree
short_description: Lay out a job's uploads as links under one directory, for one rsync to rank 0
description:
  - Makes O(path) anew with a link <path>/<dest> -> <src> for each upload (parents created), so that one
    C(rsync --copy-links) sends every upload to its place in the job directory. Nothing is copied.
options:
  path: {type: path, required: true, description: The tree (the plan's staging.tree).}
  uploads:
    type: list
    elements: dict
    required: true
    description: The plan's uploads; each has C(src) (on the controller) and C(dest) (in the job directory).
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "uploads": {
                "type": "list",
                "elements": "dict",
                "required": True,
            },
        },
        supports_check_mode=True,
    )
    root = module.params["path"]
    if not module.check_mode:
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root, mode=0o700)
        for u in module.params["uploads"]:
            link = os.path.join(root, u["dest"])
            os.makedirs(os.path.dirname(link), mode=0o700, exist_ok=True)
            os.symlink(u["src"], link)
    # A scratch layout on the controller, rebuilt every time: nothing on any node changed.
    module.exit_json(changed=False, path=root)


if __name__ == "__main__":
    main()
