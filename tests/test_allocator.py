import os
import platform
import resource

import pytest
import torch

from hybridunet.allocator import retained_cpu_memory

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
BIG = 64 * 2**20 // 4  # float32 elements in 64 MiB: above glibc's largest mmap threshold


def page_faults(cycles: int) -> list[int]:
    """Minor page faults taken by each of `cycles` rounds of allocating, writing and
    freeing 64 MiB."""
    faults = []
    for _ in range(cycles):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.empty(BIG)
        t.fill_(1.0)
        del t
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults


def faulted(faults: list[int]) -> int:
    """How many rounds faulted a large part of the 64 MiB (16384 pages) in."""
    return sum(f > 4096 for f in faults)


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@glibc_only
def test_freed_memory_is_reused_inside_the_block_and_handed_back_after(monkeypatch):
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    outside = page_faults(4)
    with retained_cpu_memory() as active:
        assert active
        page_faults(4)  # the first rounds fault the heap's pages in
        inside = page_faults(8)
        with retained_cpu_memory():
            pass
        after_inner_block = page_faults(8)  # leaving a nested block keeps the setting
        kept = resident_bytes()
    released = kept - resident_bytes()
    assert faulted(outside) == 4, outside
    # Reused: at most one round in eight may still find the heap top elsewhere.
    assert faulted(inside) <= 1 and faulted(after_inner_block) <= 1, (inside, after_inner_block)
    assert released >= 48 * 2**20, f"only {released / 2**20:.0f} MiB handed back"


@pytest.mark.parametrize("env", [("MALLOC_ARENA_MAX", "2"), ("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")])
def test_a_user_tuned_malloc_is_left_alone(monkeypatch, env):
    monkeypatch.setenv(*env)
    with retained_cpu_memory() as active:
        assert not active


def test_disabled_changes_nothing():
    with retained_cpu_memory(enabled=False) as active:
        assert not active


@pytest.mark.parametrize("retain", [True, False])
def test_training_on_cpu_retains_memory_as_configured(tiny_config, tiny_data, tmp_path, monkeypatch, retain):
    seen = []
    from hybridunet.engine import training as fit_module

    original = fit_module.retained_cpu_memory

    def spy(enabled: bool = True):
        seen.append(enabled)
        return original(enabled)

    monkeypatch.setattr(fit_module, "retained_cpu_memory", spy)
    config = tiny_config(tiny_data, tmp_path, "train.epochs=1", "data.limit_train=4", "data.limit_val=2",
                  f"train.retain_cpu_memory={str(retain).lower()}", "train.device=cpu")
    fit_module.fit(config)
    assert seen == [retain]
