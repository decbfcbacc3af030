"""Helpers of the course "Estimating image rotation with CNNs".

One module per idea the notebooks teach: ``angles`` (encoding and circular error),
``rotation`` (rotating with four border strategies), ``sources`` (where photos come from),
``datasets`` (FiftyOne and PyTorch), ``backbones`` (ResNet18, EfficientNet-Lite0 and their
ImageNet weights), ``models`` (the regression head, checkpoints), ``precision`` (devices and
mixed precision), ``training``, ``evaluation``, ``heads`` (five ways to ask for an angle) and ``readouts``
(heads trained on fixed features, notebook 07), ``headpose`` (yaw, pitch and roll, notebook 08),
``straighten``, ``upright`` (when to turn a photo at all), ``photo_mix`` (a mix of photos as they
come, to score a straightener on) and ``export`` (the trained model as a tool), ``plots``, ``gradcam``, ``widgets``, ``digits``
(notebook 02), ``exercises`` (answer checks), ``profiles`` and ``config`` (the scale of a run,
where files go), ``colab`` (opening the notebooks in Google Colab) and ``cli`` (the
``rotation-course`` command).
Import the module you need, e.g. ``from rotation_utils import angles``.
"""
__version__ = "0.1.0"
