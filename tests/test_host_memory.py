"""training.mmap_threshold_mb: freed large tensors leave the process instead of staying resident
as holes in glibc's heap. Each case runs in its own interpreter: the setting is process-wide."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from finetune.training.host_memory import fix_mmap_threshold

# Free a large block once (glibc then raises its adaptive threshold above 4 MiB), allocate 64
# blocks of 4 MiB, and free all but the last: with the heap serving them, the freed 252 MiB sit
# below a live block and cannot be trimmed.
PROBE = """
import json, sys, torch
from finetune.training.host_memory import fix_mmap_threshold
def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
applied = fix_mmap_threshold(float(sys.argv[1]) if sys.argv[1] != "none" else None)
big = torch.ones(8 * 2**18); del big
blocks = [torch.ones(2**20) for _ in range(64)]
held = rss_mb()
del blocks[:-1]
print(json.dumps({"applied": applied, "released_mb": held - rss_mb()}))
"""

glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)


def probe(threshold: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, threshold], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@glibc
def test_fixed_threshold_returns_freed_tensors_to_the_os():
    fixed, adaptive = probe("1"), probe("none")
    assert fixed["applied"] and not adaptive["applied"]
    assert fixed["released_mb"] > 200, fixed  # 63 blocks of 4 MiB went back
    assert adaptive["released_mb"] < 50, adaptive  # the control: glibc's default keeps them


def test_null_threshold_leaves_the_allocator_alone():
    assert fix_mmap_threshold(None) is False
