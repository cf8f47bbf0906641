"""The step core every family shares, pure torch and no I/O beyond tensors: the typed config sections,
the batch plan, the trainer's set-up and optimizer step, the epoch source and its resume rule,
checkpoint tensors, the memory savers, schedules and MFU."""
