"""colorgan: colorize grayscale photos with a conditional GAN in L*a*b* space."""

__version__ = "0.1.0"
