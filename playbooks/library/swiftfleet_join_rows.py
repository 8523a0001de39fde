#!/usr/bin/python
"""Ansible module (controller side): a data-parallel job's results, fetched from every node, as one file in input
order."""

DOCUMENTATION = r"""
module: swiftfleet_join_rows
short_description: Join the nodes' result files of a data-parallel job in rank order
description:
  - Rank R did rows O(bounds)[R] of the job's rows, in order, so the parts read in rank order are the rows'
    order. Writes O(dest) (replaced whole, only when its content changes). With O(one_per_row) (infer's answers)
    it says how many each part holds against its share; a short part (ms-swift skips a row it cannot encode) is
    reported, not hidden. Without it (sample: any number of sequences per row) it counts the lines.
options:
  parts: {type: list, elements: path, required: true, description: Each rank's fetched results, rank order.}
  bounds: {type: list, elements: list, required: true, description: "Each rank's share [lo, hi) (the plan's)."}
  dest: {type: path, required: true, description: The joined file.}
  one_per_row: {type: bool, default: true, description: Each row has one result line.}
"""

import os

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "parts": {"type": "list", "elements": "path", "required": True},
            "bounds": {"type": "list", "elements": "list", "required": True},
            "dest": {"type": "path", "required": True},
            "one_per_row": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    text, short = [], []
    for rank, (part, (lo, hi)) in enumerate(zip(p["parts"], p["bounds"], strict=True)):
        try:
            with open(part, encoding="utf-8") as f:
                lines = [line.rstrip("\n") + "\n" for line in f if line.strip()]
        except OSError as exc:
            module.fail_json(msg=f"rank {rank}'s results {part}: cannot read them ({exc.strerror})")
        if p["one_per_row"] and len(lines) != hi - lo:
            short.append(f"rank {rank} has {len(lines)} answers for rows {lo}-{hi}")
        text += lines
    joined = "".join(text)
    try:
        with open(p["dest"], encoding="utf-8") as f:
            changed = f.read() != joined
    except OSError:
        changed = True
    if changed and not module.check_mode:
        os.makedirs(os.path.dirname(p["dest"]), exist_ok=True)
        with open(p["dest"] + ".part", "w", encoding="utf-8") as f:
            f.write(joined)
        os.replace(p["dest"] + ".part", p["dest"])
    total = p["bounds"][-1][1] if p["bounds"] else 0
    module.exit_json(
        changed=changed,
        rows=len(text),
        short=short,
        msg=f"{len(text)} {'answers to' if p['one_per_row'] else 'lines from'} {total} rows, in input order: "
        f"{p['dest']}"
        + (f" ({'; '.join(short)})" if short else ""),
    )


if __name__ == "__main__":
    main()
