"""Models, losses, the shared trainer and run planning (docs/architecture.md)."""

import logging

# torchao (the memory savers, training/core/savers.py) is imported by diffusers too, and its import
# logs a warning per GPU kernel library a CPU build cannot load, per missing Triton, per deprecated
# pytree registration, and diffusers one about torch.load of torchao checkpoints (never used here).
for _name in (
    "torchao",
    "torchao.kernel.intmm",
    "torch.utils._pytree",
    "diffusers.quantizers.torchao.torchao_quantizer",
):
    logging.getLogger(_name).setLevel(logging.ERROR)
