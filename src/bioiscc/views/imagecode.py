"""ISCC-IMAGE of a view, ISCC-MIXED of a scene, and the composite ISCC-CODE (docs/views.md, section 7).

- ISCC-IMAGE: iscc-core's `gen_image_code_v0` on the 1024 gray values of the exact 32 x 32 area
  average of the view's 8-bit gray image; 256 bits by default, 64 (the ISO default) on request. The
  64-bit code is the first 64 bits of the 256-bit one. The digest is computed here with numpy, by
  the same fast DCT iscc-core runs in pure Python (the same floating-point operations in the same
  order, one vector of rows at a time), so it is bit for bit iscc-core's (tests/test_views.py
  compares them) and about 30x faster; iscc-core encodes the code.
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

import math
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
    ic = _iscc_core()
    digest = image_digest(reduce_to_code_side(gray), bits)
    component = ic.encode_component(
        mtype=ic.MT.CONTENT, stype=ic.ST_CC.IMAGE, version=ic.VS.V0, bit_length=bits, digest=digest
    )
    return f"ISCC:{component}"


#: the four 8 x 8 corners of the upper-left 16 x 16 DCT coefficients, in the order of their bits
_DIGEST_SLICES = ((0, 0), (8, 0), (0, 8), (8, 8))


def image_digest(pixels: np.ndarray, bits: int) -> bytes:
    """iscc-core's `soft_hash_image_v0` of 32 x 32 gray values: bit for bit, vectorised."""
    rows = _dct_rows(pixels.reshape(32, 32).astype(np.float64))
    matrix = _dct_rows(rows.T).T  # the DCT of every column of the row transform
    blocks = [matrix[y : y + 8, x : x + 8].reshape(-1) for x, y in _DIGEST_SLICES[: bits // 64]]
    digest = b""
    for block in blocks:
        ordered = np.sort(block)
        median = (float(ordered[31]) + float(ordered[32])) / 2  # as statistics.median of 64 values
        digest += np.packbits(block > median).tobytes()
    return digest


def _dct_rows(v: np.ndarray) -> np.ndarray:
    """Nayuki's fast DCT (as iscc-core's alg_dct) of every row of `v`: each level of the recursion
    for every row and every sub-vector at once, with the same operations in the same order."""
    rows, n = v.shape
    levels = []
    current = v.reshape(rows, 1, n)
    while current.shape[2] > 1:  # down: each vector splits into its sums (alpha) and differences
        size = current.shape[2]
        half = size // 2
        mirrored = current[:, :, ::-1][:, :, :half]
        alpha = current[:, :, :half] + mirrored
        beta = (current[:, :, :half] - mirrored) / _DCT_FACTORS[size]
        levels.append(size)
        current = np.stack((alpha, beta), axis=2).reshape(rows, -1, half)
    for size in reversed(levels):  # up: interleave the transforms of alpha and beta
        half = size // 2
        pairs = current.reshape(rows, -1, 2, half)
        alpha, beta = pairs[:, :, 0], pairs[:, :, 1]
        result = np.empty((rows, pairs.shape[1], size))
        result[:, :, 0 : size - 2 : 2] = alpha[:, :, : half - 1]
        result[:, :, 1 : size - 2 : 2] = beta[:, :, : half - 1] + beta[:, :, 1:half]
        result[:, :, size - 2] = alpha[:, :, half - 1]
        result[:, :, size - 1] = beta[:, :, half - 1]
        current = result
    return current.reshape(rows, n)


#: the divisors of the DCT's odd half, computed with math.cos exactly as iscc-core computes them
_DCT_FACTORS = {
    n: np.array([math.cos((i + 0.5) * math.pi / n) * 2.0 for i in range(n // 2)]) for n in (2, 4, 8, 16, 32)
}


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
