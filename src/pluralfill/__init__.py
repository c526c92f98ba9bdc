"""pluralfill: pluralistic image inpainting."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pluralfill")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

from pluralfill.errors import PluralfillError
from pluralfill.methods import Inpainter, available_methods, describe, load_inpainter

__all__ = ["Inpainter", "PluralfillError", "available_methods", "describe", "load_inpainter", "__version__"]
