"""Helpers of the course "Estimating image rotation with CNNs".

One module per idea the notebooks teach: ``angles`` (encoding and circular error),
``rotation`` (rotating with four border strategies), ``sources`` (where photos come from),
``datasets`` (FiftyOne and PyTorch), ``models``, ``training``, ``evaluation``, ``plots``,
``gradcam``, ``widgets``, ``digits`` (notebook 02) and ``cli`` (the ``rotation-course`` command).
Import the module you need, e.g. ``from rotation_utils import angles``.
"""
__version__ = "0.1.0"
