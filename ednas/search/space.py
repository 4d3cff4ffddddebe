"""The search space is architecture data (ednas/arch/space.py), shared with the latency tables
and the supernet; the search reaches it under this name too."""

from ednas.arch.space import DEFAULT_SPACE, Chooser, SearchSpace, SpaceConfig

__all__ = ["DEFAULT_SPACE", "Chooser", "SearchSpace", "SpaceConfig"]
