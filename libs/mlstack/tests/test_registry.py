"""mlstack.registry on a real sqlite registry: several candidates of one run, the best by a
lower-is-better metric gated, the others tagged; the promotion JSON matches the version's tags;
the registered files come back from the registry. And tree_hash, the unlabelled content hash."""

import json
import shutil

import pytest

from mlstack.registry import Candidate, download, register_and_gate
from mlstack.train.promotion import tree_hash


def test_tree_hash_ignores_location_but_not_content_or_names(tmp_path):
    folder = tmp_path / "index"
    (folder / "part").mkdir(parents=True)
    (folder / "part" / "a.bin").write_bytes(b"A")
    (tmp_path / "queries.jsonl").write_text('{"q": 1}\n')
    original = tree_hash([folder, tmp_path / "queries.jsonl"])
    moved = tmp_path / "elsewhere"
    shutil.copytree(folder, moved / "index")
    shutil.copy(tmp_path / "queries.jsonl", moved / "queries.jsonl")
    assert tree_hash([moved / "queries.jsonl", moved / "index"]) == original
    (moved / "index" / "part" / "a.bin").write_bytes(b"B")
    assert tree_hash([moved / "queries.jsonl", moved / "index"]) != original
    (folder / "part" / "a.bin").rename(folder / "part" / "b.bin")  # same bytes, another file
    assert tree_hash([folder, tmp_path / "queries.jsonl"]) != original


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")


def candidates(tmp_path, losses: dict[str, float], heldout: str = "set-a") -> list[Candidate]:
    out = []
    for name, loss in losses.items():
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        (folder / "weights.txt").write_text(f"{name} {loss}")
        out.append(
            Candidate(
                name="m",
                files={"": folder, "extra/card.txt": folder / "weights.txt"},
                params={"lr": loss},
                data_hash="d" * 64,
                heldout_hash=heldout,
                metric="loss@1",
                score=loss,
                metrics={"recall@10": 1 - loss},
                tags={"candidate": name},
            )
        )
    return out


def test_best_candidate_gated_others_tagged_and_recorded(tmp_path, store):
    import mlflow

    out = tmp_path / "promotion.json"
    first = register_and_gate(
        candidates(tmp_path, {"a": 0.4, "b": 0.3}),
        experiment="x",
        rule={"min_gain": 0.01, "higher_is_better": False},
        promotion_json=out,
    )
    assert first["candidate"] == "b" and first["decision"]["promoted"]
    assert json.loads(out.read_text()) == first
    client = mlflow.MlflowClient()
    skipped = client.get_model_version("m", first["versions"]["a"]).tags
    assert skipped["promotion.decision"] == "not a candidate"
    chosen = client.get_model_version("m", first["versions"]["b"]).tags
    assert chosen["metrics.loss_at_1"] == "0.3" and chosen["metrics.recall_at_10"] == "0.7"
    assert chosen["lineage.data_hash"] == "d" * 64 and chosen["gate.metric"] == "loss@1"
    files = download(client.get_model_version_by_alias("m", "champion"))
    assert (files / "weights.txt").read_text() == "b 0.3"
    assert (files / "extra" / "card.txt").read_text() == "b 0.3"  # renamed on the way in

    # lower is better: 0.295 is better than 0.3, but not by more than the margin
    second = register_and_gate(
        candidates(tmp_path, {"c": 0.295}),
        experiment="x",
        rule={"min_gain": 0.01, "higher_is_better": False},
        promotion_json=out,
    )
    assert not second["decision"]["promoted"] and second["decision"]["alias"] == "challenger"
    assert json.loads(out.read_text())["decision"]["reason"] == second["decision"]["reason"]
    third = register_and_gate(
        candidates(tmp_path, {"d": 0.2}),
        experiment="x",
        rule={"min_gain": 0.01, "higher_is_better": False},
        promotion_json=out,
    )
    assert third["decision"]["promoted"] and "gain +0.1000" in third["decision"]["reason"]


def test_missing_files_register_nothing(tmp_path, store):
    import mlflow

    broken = candidates(tmp_path, {"a": 0.4})[0]
    broken.files = {"model.onnx": tmp_path / "absent.onnx"}
    with pytest.raises(FileNotFoundError, match=r"absent\.onnx"):
        register_and_gate(
            broken, experiment="x", rule={"min_gain": 0}, promotion_json=tmp_path / "p.json"
        )
    assert not (tmp_path / "p.json").exists()
    assert not mlflow.MlflowClient().search_registered_models()


def test_install_champion_refuses_missing_files_and_finishes_a_cut_swap(tmp_path):
    from mlstack.registry import install_champion

    (tmp_path / "w.txt").write_text("v1")
    target = tmp_path / "champion"
    install_champion({"w.txt": tmp_path / "w.txt"}, target)
    with pytest.raises(FileNotFoundError, match="absent"):
        install_champion({"w.txt": tmp_path / "w.txt", "x": tmp_path / "absent"}, target)
    assert (target / "w.txt").read_text() == "v1"  # nothing moved
    target.rename(tmp_path / "champion.old")  # killed between the two renames
    (tmp_path / "w.txt").write_text("v2")
    install_champion({"w.txt": tmp_path / "w.txt"}, target)
    assert (target / "w.txt").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["champion", "w.txt"]
