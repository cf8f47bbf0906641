"""The held-out split lives with the data (the dataset manifest records it): see data/split.py."""

from doodleflow.data.split import heldout_split, is_heldout

__all__ = ["heldout_split", "is_heldout"]
