"""Black-and-white film in color: video colorization with stable colors (the ``video`` extra).

A frame's journey: :mod:`.decode` reads it (PyAV), :mod:`.frames` colorizes it with the model
(through the :class:`~colorgan.colorizer.Colorizer`'s own steps) and :mod:`.temporal` keeps its
colors steady along the optical flow (cuts found, colors carried; :mod:`.memory` recalls what a
shot has shown), :mod:`.encode` writes it into
a part and joins the parts; :mod:`.job` runs a whole file (segments, resume, atomic output).
:mod:`.settings` holds the options and needs neither PyAV nor OpenCV, nor does :mod:`.api`, the
Python entry points, which say in one line what to install when the extra is missing.

Example::

    from colorgan import Colorizer
    from colorgan.video.api import colorize_frames, colorize_video

    colorizer = Colorizer.from_pretrained()
    colorize_video(colorizer, "film.mp4", "film_color.mp4", strength=0.85)
    colored = list(colorize_frames(colorizer, gray_frames))  # frames in memory, in order
"""
