"""PhotoDoodle on FLUX: condition tokens, flow-matching loss, LoRA stages, sampler (pure torch).

Only `training.photodoodle.ray_job` imports Ray; nothing in this package imports Prefect.
"""
