"""ISCC-IMAGE of a view, ISCC-MIXED of a scene, and the composite ISCC-CODE (docs/views.md, section 7).

- ISCC-IMAGE: iscc-core's `gen_image_code_v0` on the 1024 gray values of the exact 32 x 32 area
  average of the view's 8-bit gray image; 256 bits by default, 64 (the ISO default) on request. The
  64-bit code is the first 64 bits of the 256-bit one.
- ISCC-MIXED: iscc-core's `gen_mixed_code_v0` over the view codes in view order, at the same bit
  length. iscc-core needs two codes at least: a scene with one view mixes that view's code with
  itself (as iscc-bio 0.2.0 does), so its ISCC-MIXED is the first byte of the image code's header
  followed by the first bytes of its body.
- Composite ISCC-CODE: iscc-core's `gen_iscc_code_v0` over ISCC-MIXED + Data-Code + Instance-Code.
  iscc-core makes a WIDE code only from Data + Instance alone; with a Content unit every unit is
  truncated to 64 bits. The result is `ISCC:KQA…` (MainType ISCC, SubType MIXED, 192-bit body), the
  same whether the scene record is wide (256-bit units) or narrow (64-bit units), and whether the
  views were coded with 64 or 256 bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .reduce import reduce_to_code_side

BITS_CHOICES = (64, 256)
DEFAULT_BITS = 256
#: Two 256-bit ISCC-MIXEDs within this many bits show the same image (docs/views.md, section 8).
SIMILAR_BITS = 32
#: How the ISCC-MIXED was made, as the image record states it.
MIXED_RULE_SIMHASH = "simhash of the view codes"
MIXED_RULE_SINGLE = "single view: its code mixed with itself"


def _iscc_core() -> Any:
    import iscc_core

    return iscc_core


def image_code(gray: np.ndarray, bits: int = DEFAULT_BITS) -> str:
    """The ISCC-IMAGE of an 8-bit gray image of any size."""
    if bits not in BITS_CHOICES:
        raise ValueError(f"ISCC-IMAGE bits must be one of {BITS_CHOICES}, got {bits}")
    pixels = [int(v) for v in reduce_to_code_side(gray).reshape(-1)]
    return str(_iscc_core().gen_image_code_v0(pixels, bits=bits)["iscc"])


def code_body(code: str) -> bytes:
    """The digest (body) of a single ISCC unit."""
    ic = _iscc_core()
    return bytes(ic.decode_header(ic.decode_base32(ic.iscc_clean(code)))[-1])


def hamming(a: str, b: str) -> int:
    """Bits that differ between the bodies of two codes of the same length."""
    first, second = code_body(a), code_body(b)
    if len(first) != len(second):
        raise ValueError("codes of different lengths")
    return int.from_bytes(bytes(x ^ y for x, y in zip(first, second, strict=True)), "big").bit_count()


def mixed_code(codes: Sequence[str], bits: int = DEFAULT_BITS) -> tuple[str, str]:
    """The ISCC-MIXED of the view codes, and the rule that made it."""
    if not codes:
        raise ValueError("ISCC-MIXED needs at least one view code")
    rule = MIXED_RULE_SIMHASH if len(codes) > 1 else MIXED_RULE_SINGLE
    inputs = list(codes) if len(codes) > 1 else [codes[0], codes[0]]
    return str(_iscc_core().gen_mixed_code_v0(inputs, bits=bits)["iscc"]), rule


def composite_code(mixed: str, units: Sequence[str]) -> str:
    """The ISCC-CODE of ISCC-MIXED + the scene's Data-Code and Instance-Code units."""
    return str(_iscc_core().gen_iscc_code_v0([mixed, *units])["iscc"])
