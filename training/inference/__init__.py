"""Using a trained model: Paint by Example's sampler and `generate pbe`, PhotoDoodle's FLUX sampler and
`generate doodle`, and the user's image files. Training's samples (previews) and the evaluation call
these; nothing here trains."""
