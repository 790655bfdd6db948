"""Suite-wide scheduling for pytest-xdist (`-n 2 --dist loadgroup` in pyproject.toml).

Each test module is one xdist group, so its tests run on one worker in file order and its
module-scoped fixtures (a live server, an exported model) are built once, not once per worker.
The modules in SPREAD have independent tests with nothing module-scoped to share (each builds its
own service or deployment): their tests go to whichever worker is free. The modules in HEAVY are
handed out first, so that the run does not end on one worker with a minute of work left.
Without xdist (`pytest -p no:xdist`, or `-n 0`) none of this changes what runs or how.
"""

import pytest

# independent tests, each a minute or more: one service (or two replicas) per test
SPREAD = (
    "tests/test_api_contract.py",
    "projects/rag_chatbot/tests/test_workers.py",
)
# the longest modules (durations under load), longest first
HEAVY = (
    "tests/test_api_contract.py",
    "projects/image_classifier/tests/test_retrain.py",
    "tests/test_k8s.py",
    "libs/mlstack/tests/test_monitor.py",
    "projects/rag_chatbot/tests/test_workers.py",
    "libs/mlstack/tests/test_promotion.py",
    "tests/test_serving_runtime.py",
)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):  # set in an xdist worker under loadgroup
        return
    for item in items:
        module = _module(item)
        if module not in SPREAD and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(module))
    rank = {module: i for i, module in enumerate(HEAVY)}
    items.sort(key=lambda item: rank.get(_module(item), len(HEAVY)))  # stable: file order kept
