"""Paint-by-Example: model, loss, training loop, latent cache and sampler (pure torch).

Only `training.pbe.ray_job` imports Ray; nothing in this package imports Prefect.
"""
