"""Print what a compiled wheel built in this environment depends on (the wheel cache key's stack, as JSON)."""

import json
import platform
import sys
import sysconfig

try:
    import torch

    TORCH, CUDA = torch.__version__, torch.version.cuda or "none"
except ImportError:
    TORCH, CUDA = "none", "none"

print(
    json.dumps(
        {
            "torch": TORCH,
            "cuda": CUDA,
            "python": f"cp{sys.version_info.major}{sys.version_info.minor}",
            "platform": sysconfig.get_platform(),
            "libc": "".join(platform.libc_ver()) or "unknown",
        }
    )
)
