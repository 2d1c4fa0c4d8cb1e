"""Views of a scene, their ISCC-IMAGEs, the scene's ISCC-MIXED and composite ISCC-CODE.

The ISCC-SUM of a scene says "these pixels, exactly"; the codes made here say "this looks like
that". A scene gives a few 2D views (`select`), each read from full-resolution pixels, reduced band
by band (`reduce`), normalised to 8 bits (`normalize`), and coded (`imagecode`). The algorithm is
specified in docs/views.md; its identifier, VIEWS_ALGORITHM, is carried by every record made here,
so that a change of algorithm shows in the data.

Modules: `select` (strategies, priority order), `reduce` (binning, the 32 x 32 reduction, row bands),
`normalize` (8 bits), `render` (rendering and near-duplicate removal), `extract` (reading the planes),
`imagecode` (ISCC-IMAGE / ISCC-MIXED / ISCC-CODE), `thumbs` (previews from pyramid levels),
`records` (the bioiscc.views and bioiscc.image records), `api` (what the commands call).

This package imports numpy lazily through its modules; importing `bioiscc.views` itself is cheap.
"""

from __future__ import annotations

#: The identifier of the documented algorithm (docs/views.md). Change it with any change of output.
VIEWS_ALGORITHM = "bioiscc-views/1"

__all__ = ["VIEWS_ALGORITHM"]
