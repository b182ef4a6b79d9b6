"""Sub-commands of the ``sepnet`` CLI; one module each, see :mod:`sepnet_core.cli`."""
