"""pluralfill: pluralistic image inpainting."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pluralfill")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

from pluralfill.errors import PluralfillError

# what `pluralfill inpaint`, `demo` and the web app run without a choice: diverse, sharp fills from the
# photo's own texture, offline and without weights (the learned models are one `pluralfill models add` away)
DEFAULT_METHOD = "patchmatch-plural"

_LAZY = {"available_methods", "bundled_models", "describe", "load_inpainter"}  # these import torch: load on first use


def __getattr__(name):
    if name in _LAZY:
        from pluralfill import registry

        return getattr(registry, name)
    if name in ("Inpainter", "Samples"):
        from pluralfill.methods import base

        return getattr(base, name)
    raise AttributeError(f"module 'pluralfill' has no attribute {name!r}")


__all__ = [
    "DEFAULT_METHOD",
    "Inpainter",
    "PluralfillError",
    "Samples",
    "__version__",
    "available_methods",
    "bundled_models",
    "describe",
    "load_inpainter",
]
