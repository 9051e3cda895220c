"""nbcog's version, in a module of its own: the one place it is written.

pyproject.toml reads it for the package metadata, ``nbcog.__version__`` re-exports it, and
the layers (``core/versions.py``) import it from here, never from the package root.
"""

__version__ = "0.1.0"
