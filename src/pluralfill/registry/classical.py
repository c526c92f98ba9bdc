"""The classical fills: no weights, no training, any image size."""

from pluralfill.methods.classical import PatchMatchInpainter, navier_stokes, telea
from pluralfill.registry import MethodSpec, register

register(MethodSpec(name="patchmatch", summary="PatchMatch (Barnes et al. 2009): copies patches of the photo into the hole",
                    inpainter=PatchMatchInpainter))  # fmt: skip
register(MethodSpec(name="telea", summary="OpenCV's fast marching fill (Telea 2004)", inpainter=telea))
register(MethodSpec(name="navier-stokes", summary="OpenCV's Navier-Stokes fill (Bertalmio et al. 2001)", inpainter=navier_stokes))
