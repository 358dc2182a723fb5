"""colorgan: colorize grayscale photos with a conditional GAN in L*a*b* space."""

__version__ = "0.1.0"

__all__ = ["Colorizer", "Hint"]


def __getattr__(name: str):
    # Lazy, so that `import colorgan` (and the CLI's start) stays light until the Colorizer is used.
    if name == "Colorizer":
        from colorgan.colorizer import Colorizer

        return Colorizer
    if name == "Hint":
        from colorgan.hints import Hint

        return Hint
    raise AttributeError(f"module 'colorgan' has no attribute {name!r}")
