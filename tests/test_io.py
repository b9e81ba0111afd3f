"""Atomic writes: the whole file or nothing, readable like any file the user makes."""

import json
import os
import stat

import pytest

from lorabook.io import atomic_write, write_json


def test_write_json_is_complete_and_readable_by_others(tmp_path):
    path = write_json(tmp_path / "sub" / "record.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]  # no temp file left


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = write_json(tmp_path / "record.json", {"old": True})

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
