"""Portraits that generated footage may show: real public-domain faces loaded from installed packages.

Generated footage ships with the demo and the benchmarks, so every face in it must be
free to redistribute (DESIGN.md §5). No image file is committed: each portrait is read
from a package that carries it, and PORTRAITS.md beside this file records each one's
licence and source. A portrait qualifies only if it is frontal enough for MediaPipe's
face mesh to find it (scikit-image's ``camera`` is a profile shot and does not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Portrait:
    """One shippable portrait: where it comes from, under what licence, and how to load it."""

    name: str
    licence: str
    source: str
    load: Callable[[], np.ndarray]  # -> (H, W, 3) uint8 RGB


def _load_astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[..., :3], dtype=np.uint8)


def _load_grace_hopper() -> np.ndarray:
    import matplotlib.cbook
    from PIL import Image  # matplotlib depends on Pillow

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


PORTRAITS: dict[str, Portrait] = {
    portrait.name: portrait
    for portrait in (
        Portrait(
            name="astronaut",
            licence="public domain (work of NASA, a US federal agency)",
            source="scikit-image: skimage.data.astronaut() (Eileen Collins, NASA photo)",
            load=_load_astronaut,
        ),
        Portrait(
            name="grace_hopper",
            licence="public domain (US Navy photograph, work of the US federal government)",
            source="matplotlib: matplotlib.cbook.get_sample_data('grace_hopper.jpg')",
            load=_load_grace_hopper,
        ),
    )
}


def portrait_names() -> tuple[str, ...]:
    """Names of all registered portraits, in registry order."""
    return tuple(PORTRAITS)


def load_portrait(name: str) -> np.ndarray:
    """The named portrait as ``(H, W, 3)`` uint8 RGB; ``KeyError`` names the known ones."""
    try:
        portrait = PORTRAITS[name]
    except KeyError:
        raise KeyError(f"unknown portrait {name!r}; known: {', '.join(PORTRAITS)}") from None
    return portrait.load()
