"""doodleflow's data library: curation steps, sample building and the versioned Parquet store.

Nothing here imports Prefect or Ray: flows/ and tasks/ wire these functions together.
"""
