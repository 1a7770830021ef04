"""Every random draw gets its own generator, seeded from the run's parameters and a purpose.

A draw therefore never depends on what else consumed randomness before it (global RNG state,
other layers' draws, the order runs execute in).
"""
import hashlib

import torch


def derive_seed(*parts) -> int:
    """A 63-bit seed from any printable parts, e.g. derive_seed(7, "init")."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*parts) -> torch.Generator:
    """A CPU generator for one purpose; draws are made on CPU so every device sees the same values."""
    return torch.Generator().manual_seed(derive_seed(*parts))
