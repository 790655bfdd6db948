"""The converted model folder must be readable by the service images' user (uid 10001, models
mounted read-only): safetensors writes its files 0600."""

import stat

from llm_chat.convert import convert
from llm_chat.testing import save_tiny_llama


def test_convert_writes_files_every_user_can_read(tmp_path):
    source = save_tiny_llama(tmp_path / "source")
    out = tmp_path / "base"
    convert(str(source), out)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    for path in files:
        mode = path.stat().st_mode
        assert mode & stat.S_IROTH and mode & stat.S_IRGRP, f"{path.name}: {oct(mode)}"
    assert out.stat().st_mode & stat.S_IXOTH
