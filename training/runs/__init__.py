"""A run in the store: its folder (where runs live, checkpoints, records, seals, leases), the run
planning and checks in the driver, the latent caches, local copies of store files, metrics and
reports. No Ray."""
