"""The parts of ``colorgan train``: options, trainer, checkpoints, run record and validation (the loop is :mod:`colorgan.training.loop`)."""
