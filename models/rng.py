"""Seeded torch random generators that also work where torch's import was lightened.

torch 2.13 gives ``torch.Generator`` its metaclass in ``torch._prims.rng_prims``,
a module that ``import torch`` reaches only through ``torch._meta_registrations``.
`genredream run` defers that one (engine/startup.py: 0.4 s of every start), and
there ``torch.Generator()`` raises "cannot be called before the opaque metaclass
is set". So every generator of ours is made by :func:`generator`, which imports
``rng_prims`` first: 0.2-0.3 s the first time in a lightened process (the
dream makes its first one while it warms up, before the stream starts; a model
file's first validation makes one), nothing in any other.
"""

from __future__ import annotations

__all__ = ["generator"]


def generator(seed):
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    import torch

    try:
        import torch._prims.rng_prims  # noqa: F401  (binds torch.Generator's metaclass; see the module docstring)
    except ImportError:  # a torch that binds it elsewhere
        pass
    return torch.Generator().manual_seed(int(seed))
