"""The words of a CZI's subblock check (`bioiscc.sources.integrity`): "truncated" only when the file
ends before a subblock; a subblock whose segment header is overwritten in a whole file is "corrupt".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bioiscc.sources import integrity
from tests.conftest import json_lines, require_samples, run_cli

#: three scenes; its last subblock (number 27) belongs to the last scene
THREE_SCENES = "czi/S3_1Pos_2Mosaic_T1_Z1_CH1.czi"


def overwrite_last_segment_id(source: Path, target: Path) -> integrity.Subblock:
    """A copy of `source` (same size) whose last subblock's 16-byte segment id is garbage."""
    shutil.copy(source, target)
    last = max(integrity.czi_subblocks(target), key=lambda subblock: subblock.position)
    with target.open("r+b") as file:
        file.seek(last.position)
        assert file.read(16).rstrip(b"\0") == b"ZISRAWSUBBLOCK"
        file.seek(last.position)
        file.write(b"not-a-subblock!!")
    return last


@pytest.mark.samples
def test_an_overwritten_subblock_header_in_a_whole_file_is_corrupt_not_truncated(tmp_path: Path) -> None:
    source = require_samples() / THREE_SCENES
    path = tmp_path / "s3bad.czi"
    last = overwrite_last_segment_id(source, path)
    assert path.stat().st_size == source.stat().st_size  # the file is whole
    cause = f"corrupt: subblock {last.number} at byte {last.position} has no ZISRAWSUBBLOCK header"
    assert integrity.czi_damage(str(path), path) == {2: cause}
    result = run_cli("hash", str(path))
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [f"bioiscc: {path}: scene 2: {cause}"]
    records = json_lines(result.stdout)
    assert [r["status"] for r in records] == ["ok", "ok", "failed"]
    assert records[2]["error"] == cause
