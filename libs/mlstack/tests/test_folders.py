"""copy_into_place: a folder copied under its final name only when whole, and the first of
several processes copying at once wins."""

import os

from mlstack.folders import copy_into_place


def _source(tmp_path):
    source = tmp_path / "source"
    (source / "part").mkdir(parents=True)
    (source / "part" / "data.bin").write_bytes(b"\x00\x01")
    (source / "manifest.json").write_text("{}")
    return source


def test_the_copy_is_whole_and_nothing_else_is_left(tmp_path):
    target = tmp_path / "made" / "here" / "index"
    assert copy_into_place(_source(tmp_path), target) is True
    assert (target / "part" / "data.bin").read_bytes() == b"\x00\x01"
    assert (target / "manifest.json").read_text() == "{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["index"]


def test_a_copy_another_process_put_there_first_is_kept(tmp_path):
    target = tmp_path / "index"
    (target / "theirs").mkdir(parents=True)
    assert copy_into_place(_source(tmp_path), target) is False
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "source"]


def test_a_half_copy_left_by_a_killed_process_with_this_pid_is_replaced(tmp_path):
    target = tmp_path / "index"
    stale = tmp_path / f".index.copying-{os.getpid()}"
    (stale / "half").mkdir(parents=True)
    assert copy_into_place(_source(tmp_path), target) is True
    assert not (target / "half").exists() and not stale.exists()
