"""The memory plan of a training run: one real optimisation step of the project's own trainer code
(training/photodoodle/trainer.py, training/pbe/trainer.py) simulated on fake tensors at full size,
with no GPU and no weights, and its peak reported by part.

`tracker.py` counts live storages; `gpu.py` makes the CPU simulation spend memory as the GPU run does
(CUDA autocast's fp32 ops, the flash-attention kernel and its workspace, the GPU's optimizer path);
`families.py` builds each family's trainer on fake tensors; `plan.py` runs it and reports; `limits.py`
reads a GPU's memory and says whether a plan fits; `auto.py` picks a micro-batch and a preset.
"""
