"""Custom objects of larq-zoo models, for `to_tflite.py --custom-objects export/larq_zoo_objects.py`.

Importing larq_zoo registers its layers; QuickNet's blur-pool initializer is a plain function
that Keras saves by name only, so it is named here.
"""

import bcnn_keras  # noqa: F401  (sets up Keras 2 before larq_zoo touches tf.keras)
from larq_zoo.sota.quicknet import blurpool_initializer

custom_objects = {"blurpool_initializer": blurpool_initializer}
