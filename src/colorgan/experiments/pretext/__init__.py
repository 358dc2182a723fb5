"""Colorization as a pretext task (paper §V, Table 5.1): do a colorizer's features help classification?

The classifier is a colorization generator's encoder (same architecture, same input: the
normalized L channel) + global average pooling + a linear head. It is trained on labelled
photos either from N(0, 0.02) init (the paper's baseline) or from the encoder of a colorizer
that was itself trained from scratch, so any gain comes from colorization alone and never
from ImageNet labels. With colorization init the encoder is first frozen (head only, lr
1e-4), then every layer trains; both arms get the same number of epochs.

The experiment's parts: :mod:`.config` (the options), :mod:`.labels` (labelled photos from
class folders, CSV or COCO files, and their loaders), :mod:`.classifier` (a colorizer's encoder
with a linear head) and :mod:`.run` (training, scoring, both arms over seeds, the table).
"""
