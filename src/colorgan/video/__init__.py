"""Black-and-white film in color: video colorization with stable colors (the ``video`` extra).

Read :mod:`.io` (decoding and encoding with PyAV), :mod:`.temporal` (optical flow, cuts, the
blend that keeps colors steady), :mod:`.frames` (frames in, colorized frames out) and
:mod:`.job` (a whole file: segments, resume, atomic output). :mod:`.settings` holds the options
and needs neither PyAV nor OpenCV.
"""
