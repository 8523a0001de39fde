"""A job's uploads as one tree of links on the controller, named as the job directory wants them, so that one
`rsync --copy-links` sends every upload to its place on rank 0 (playbooks/tasks/stage.yml). Nothing is copied."""

import os
import shutil
from collections.abc import Iterable, Mapping


def lay_out(root: str, uploads: Iterable[Mapping[str, str]]) -> None:
    """Makes `root` anew (0700: nothing under it reachable by other users) with a link <root>/<dest> -> <src> for
    each upload, parents created."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root, mode=0o700)
    for upload in uploads:
        link = os.path.join(root, upload["dest"])
        os.makedirs(os.path.dirname(link), mode=0o700, exist_ok=True)
        os.symlink(upload["src"], link)
