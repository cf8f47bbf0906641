"""The held-out split lives with the data (the dataset manifest records it): see data/split.py."""

from doodleflow.data.split import Split, heldout_split, is_heldout, split_of

__all__ = ["Split", "heldout_split", "is_heldout", "split_of"]
