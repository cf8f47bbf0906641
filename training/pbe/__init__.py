"""Paint-by-Example: model, loss, training loop, latent cache and sampler (pure torch).

Only `training.pbe.stream` and `ray_cache` import Ray (the shared launcher, training/runtime/launch.py,
runs the job through `training.pbe.family`); nothing in this package imports Prefect.
"""
