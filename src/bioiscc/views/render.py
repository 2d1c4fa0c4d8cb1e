"""Rendering candidate views to 8 bits and keeping the distinct ones (docs/views.md, sections 4 and 5).

Candidates are rendered in priority order. A candidate whose 256-bit ISCC-IMAGE lies within
DUPLICATE_BITS of a view already kept is a near-duplicate and dropped; rendering stops once
`max_views` views are kept. The 256-bit code decides whatever bit length is asked for later, so the
views of a scene do not depend on `--bits`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .imagecode import hamming, image_code
from .normalize import Stretch, composite, entropy_bits, gray_of, stretch_of, to_uint8
from .select import Candidate

#: Two views whose 256-bit ISCC-IMAGEs differ in at most this many bits are near-duplicates.
DUPLICATE_BITS = 16
SELECTION_BITS = 256


def _figure(value: float) -> float:
    """A quality figure as JSON keeps it: 6 significant digits."""
    return float(f"{value:.6g}")


@dataclass(frozen=True)
class View:
    """A kept view: its 8-bit image (gray, or RGB for a composite) and its 256-bit ISCC-IMAGE."""

    candidate: Candidate
    image: np.ndarray
    stretches: tuple[Stretch, ...]
    code: str

    @property
    def id(self) -> str:
        return self.candidate.id

    @property
    def flat(self) -> bool:
        return all(s.flat for s in self.stretches)

    @property
    def mode(self) -> str:
        return "L" if self.image.ndim == 2 else "RGB"

    def quality(self) -> dict[str, Any]:
        """Figures that tell how much the view shows."""
        grids = self.candidate.grids
        figures: dict[str, Any] = {
            "finite_fraction": _figure(min(g.finite_fraction for g in grids)),
            "flat": self.flat,
            "entropy": _figure(entropy_bits(gray_of(self.image))),
            "stretch": [
                {"channel": c, "low": s.low, "high": s.high, "flat": s.flat}
                for c, s in zip(self.candidate.channels, self.stretches, strict=True)
            ],
        }
        figures.update(self.candidate.figures)
        return figures


@dataclass
class Selection:
    """The views kept for a scene, the near-duplicates dropped, and how many candidates were rendered."""

    views: list[View] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    rendered: int = 0


def render(candidate: Candidate) -> View:
    """Normalise each channel of a candidate to 8 bits, combine them, and code the gray image."""
    stretches = tuple(stretch_of(g.mean) for g in candidate.grids)
    channels = [to_uint8(g.mean, s) for g, s in zip(candidate.grids, stretches, strict=True)]
    image = composite(channels)
    return View(candidate, image, stretches, image_code(gray_of(image), SELECTION_BITS))


def select(
    candidates: Iterable[Candidate], max_views: int, duplicate_bits: int = DUPLICATE_BITS
) -> Selection:
    """Keep up to `max_views` candidates, in order, skipping near-duplicates of those kept."""
    selection = Selection()
    for candidate in candidates:
        view = render(candidate)
        selection.rendered += 1
        near = _nearest(view, selection.views)
        if near is not None and near[1] <= duplicate_bits:
            selection.dropped.append({"id": view.id, "near": near[0].id, "distance": near[1]})
            continue
        selection.views.append(view)
        if len(selection.views) >= max_views:
            break
    return selection


def _nearest(view: View, kept: list[View]) -> tuple[View, int] | None:
    distances = [(other, hamming(view.code, other.code)) for other in kept]
    return min(distances, key=lambda pair: pair[1]) if distances else None
