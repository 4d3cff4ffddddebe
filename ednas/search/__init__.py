"""Architecture search: the search space (and, later, the search loop)."""

from ednas.arch.space import DEFAULT_SPACE, SearchSpace

__all__ = ["DEFAULT_SPACE", "SearchSpace"]
