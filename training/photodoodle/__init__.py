"""PhotoDoodle on FLUX: condition tokens, flow-matching loss, LoRA stages, sampler (pure torch).

Only `training.photodoodle.stream` imports Ray (the shared launcher, training/runtime/launch.py, runs
the job through `training.photodoodle.family`); nothing in this package imports Prefect.
"""
