"""The memory plan of a training run: one real optimisation step of the project's own trainer code
(training/photodoodle/trainer.py, training/pbe/trainer.py) simulated on fake tensors at full size,
with no GPU and no weights, and its peak reported by part.

`tracker.py` counts live storages at the dispatcher; `gpu.py` makes the CPU simulation spend memory as
the GPU run does (CUDA autocast's fp32 norms, the flash-attention kernel and its workspace, the GPU's
optimizer path); `architectures.py` reads the configs; `families.py` builds each family's trainer on
fake tensors; `simulate.py` runs the step; `plan.py` reports it; `limits.py` reads a GPU's memory and
says what fits; `auto.py` picks a preset or a micro-batch and refuses; `record.py` records a job's
plan; `cpu_check.py` and `cases.py` hold the plan against real memory on the CPU.
"""
