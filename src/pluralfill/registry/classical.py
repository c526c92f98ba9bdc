"""The classical fills: no weights, no training, any image size."""

from pluralfill.methods.classical import navier_stokes, patchmatch, patchmatch_plural, telea
from pluralfill.registry import MethodSpec, register

register(
    MethodSpec(
        name="patchmatch-plural",
        summary="pluralistic PatchMatch: every sample hides its own random regions of the photo from the search, "
        "so the samples copy different textures (the default method)",
        inpainter=patchmatch_plural,
    )
)
register(
    MethodSpec(
        name="patchmatch",
        summary="PatchMatch (Barnes et al. 2009): copies patches of the photo into the hole",
        inpainter=patchmatch,
    )
)
register(MethodSpec(name="telea", summary="OpenCV's fast marching fill (Telea 2004)", inpainter=telea))
register(
    MethodSpec(
        name="navier-stokes", summary="OpenCV's Navier-Stokes fill (Bertalmio et al. 2001)", inpainter=navier_stokes
    )
)
