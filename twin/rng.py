"""One seed, spawned per component.

Each component (demand, incidents, population, feeds, ...) gets its own
generator derived from the scenario seed and the component's *name*, so adding
a component never shifts the random numbers of the others.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["component_seed", "component_rng"]


def component_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The :class:`numpy.random.SeedSequence` of component ``name`` under ``seed``."""
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))])


def component_rng(seed: int, name: str) -> np.random.Generator:
    """A fresh generator for component ``name``: same seed and name, same stream."""
    return np.random.default_rng(component_seed(seed, name))
