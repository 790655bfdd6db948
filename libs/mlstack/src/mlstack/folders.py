"""Folders that several processes may make at once (a service's workers starting together)."""

import os
import shutil
from pathlib import Path


def copy_into_place(source: Path, target: Path) -> bool:
    """Copies the folder `source` to `target`, which must not exist yet; True if this call's copy
    is the one in place.

    The copy is made in a folder of this process's own beside `target` and renamed into place,
    so a half-made copy is never seen under the real name. A rename onto a folder another
    process already put there fails: that process's copy is kept, this one's removed, and the
    answer is False."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.copying-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed process with this pid
    shutil.copytree(source, tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process put its copy there first
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    return True
