"""The inputs each attention module is called with during one forward pass, by parameter name
(forward pre-hooks see positional and keyword arguments; the signature names them)."""

from __future__ import annotations

import inspect
from collections.abc import Callable


def call_inputs(modules: list, forward: Callable[[], object]) -> list[dict]:
    """Run `forward()` once; for each module, the arguments of its first call there."""
    seen: list[dict | None] = [None] * len(modules)
    hooks = []
    for i, module in enumerate(modules):
        signature = inspect.signature(module.forward)

        def keep(_module, args, kwargs, i=i, signature=signature):
            if seen[i] is None:
                seen[i] = dict(signature.bind(*args, **kwargs).arguments)

        hooks.append(module.register_forward_pre_hook(keep, with_kwargs=True))
    try:
        forward()
    finally:
        for hook in hooks:
            hook.remove()
    return seen
