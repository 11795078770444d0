"""gpulease: a control plane for renting and scheduling rack-scale GPU compute.

Layers (imports go one way): ``domain`` -> cores (``inventory``, ``scheduler``) ->
drivers (``sim``, later ``services``) -> interfaces (``cli``). See ``../shared/DESIGN.md``.
"""

__version__ = "0.1.0"
