"""Whole-run checkpoints: bit-identical resume and the refusal cases."""
from __future__ import annotations

import copy
import hashlib
import json
import math

import pytest
import torch

from fastngd.unlearn import CHECKPOINT_NAME, UnlearningDiverged, load_checkpoint, unlearn
from fastngd.unlearn.checkpoint import save_checkpoint

from .conftest import make_classifier_data


def _same_params(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("method, options", [
    ("ngdiff", {}),
    ("rlw", {}),
    ("ngdiff", {"base": "adamw", "weight_decay": 0.05}),
    ("gdiff-0.3", {"base": "momentum", "momentum": 0.5}),
])
def test_resume_is_bit_identical_classifier(tmp_path, method, options) -> None:
    model, forget, retain = make_classifier_data()
    full = copy.deepcopy(model)
    kwargs = {"epochs": 3, "batch_size": 3, "autolr_every": 3, "optimizer_options": options}
    ref = unlearn(full, forget, retain, method, **kwargs)
    part = copy.deepcopy(model)
    first = unlearn(part, forget, retain, method, checkpoint_dir=tmp_path, max_steps=7, **kwargs)
    if options:  # the base's per-parameter state is in the checkpoint
        state = load_checkpoint(tmp_path)["optimizer"]["state"]
        names = {"adamw": "exp_avg_sq", "momentum": "momentum_buffer"}
        assert all(names[options["base"]] in entry for entry in state.values())
    assert first.steps == 7 and not first.completed
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)  # the checkpoint must overwrite whatever the model holds
    resumed = unlearn(fresh, forget, retain, method, checkpoint_dir=tmp_path, resume=True,
                      **kwargs)
    assert resumed.steps == ref.steps and resumed.completed
    assert _same_params(fresh, full)
    assert resumed.history == ref.history


def test_resume_is_bit_identical_lm_npo_autolr(tmp_path, tiny_lm, lm_data) -> None:
    forget, retain = lm_data
    full = copy.deepcopy(tiny_lm)
    kwargs = {"epochs": 2, "batch_size": 2, "lr": 0.2, "autolr": True, "autolr_every": 2}
    ref = unlearn(full, forget, retain, "npo", **kwargs)
    part = copy.deepcopy(tiny_lm)
    unlearn(part, forget, retain, "npo", checkpoint_dir=tmp_path, max_steps=3, **kwargs)
    saved = load_checkpoint(tmp_path)
    assert saved is not None and saved["step"] == 3 and saved["ref_nll"].shape == (4,)
    # resuming from a model that already moved: the reference NLLs come from the checkpoint
    resumed = unlearn(part, forget, retain, "npo", checkpoint_dir=tmp_path, resume=True, **kwargs)
    assert _same_params(part, full)
    assert [h["loss_forget"] for h in resumed.history] == [h["loss_forget"] for h in ref.history]


def test_existing_checkpoint_is_not_overwritten(tmp_path) -> None:
    model, forget, retain = make_classifier_data()
    unlearn(model, forget, retain, epochs=1, batch_size=4, checkpoint_dir=tmp_path)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        unlearn(model, forget, retain, epochs=1, batch_size=4, checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


@pytest.mark.parametrize("change, match", [
    ({"lr": 0.5}, "lr"),
    ({"method": "gdiff-0.3"}, "method"),
    ({"seed": 3}, "seed"),
])
def test_resume_with_other_config_is_refused(tmp_path, change, match) -> None:
    model, forget, retain = make_classifier_data()
    base = {"method": "ngdiff", "epochs": 2, "batch_size": 4, "lr": 0.02, "seed": 0}
    unlearn(model, forget, retain, checkpoint_dir=tmp_path, max_steps=2, **base)
    with pytest.raises(ValueError, match=f"another configuration(.|\n)*{match}"):
        unlearn(model, forget, retain, checkpoint_dir=tmp_path, resume=True, **{**base, **change})


def test_resume_with_other_data_is_refused(tmp_path) -> None:
    model, forget, retain = make_classifier_data()
    unlearn(model, forget, retain, epochs=2, batch_size=4, checkpoint_dir=tmp_path, max_steps=2)
    with pytest.raises(ValueError, match="fingerprint"):
        unlearn(model, forget[1:] + forget[:1], retain, epochs=2, batch_size=4,
                checkpoint_dir=tmp_path, resume=True)


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path) -> None:
    model, forget, retain = make_classifier_data()

    def blow_up(record):
        if record["step"] == 3:
            with torch.no_grad():
                model[0].weight[0, 0] = float("nan")

    with pytest.raises(UnlearningDiverged, match="diverged at step 4.*last good checkpoint"):
        unlearn(model, forget, retain, epochs=3, batch_size=2, checkpoint_dir=tmp_path,
                checkpoint_every=1, callbacks=[blow_up])
    saved = load_checkpoint(tmp_path)
    assert saved is not None and saved["step"] == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values())
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [CHECKPOINT_NAME, CHECKPOINT_NAME + ".sha256"]


def test_checkpoint_records_the_world_size(tmp_path) -> None:
    model, forget, retain = make_classifier_data()
    unlearn(model, forget, retain, epochs=1, batch_size=4, checkpoint_dir=tmp_path, max_steps=1)
    saved = load_checkpoint(tmp_path)
    assert saved is not None and saved["config"]["world_size"] == 1


def test_resume_with_other_world_size_is_refused(tmp_path, monkeypatch) -> None:
    import fastngd.distributed

    model, forget, retain = make_classifier_data()
    kwargs = {"epochs": 2, "batch_size": 4, "retain_batch_size": 4}
    unlearn(model, forget, retain, checkpoint_dir=tmp_path, max_steps=2, **kwargs)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    params = [p.detach().clone() for p in model.parameters()]
    monkeypatch.setattr(fastngd.distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match=r"world size 1.*world size 2"):
        unlearn(model, forget, retain, checkpoint_dir=tmp_path, resume=True, **kwargs)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))


def _uninterrupted_and_stopped(tmp_path):
    """``(model stopped after 2 steps with a checkpoint, the same model run to the end, its
    result, forget, retain)``."""
    model, forget, retain = make_classifier_data()
    full = copy.deepcopy(model)
    ref = unlearn(full, forget, retain, epochs=2, batch_size=4)
    unlearn(model, forget, retain, epochs=2, batch_size=4, checkpoint_dir=tmp_path, max_steps=2)
    return model, full, ref, forget, retain


def test_checkpoint_without_world_size_resumes_on_one_process(tmp_path) -> None:
    """Checkpoints written before the world size was recorded count as single-process."""
    from fastngd.unlearn.checkpoint import save_checkpoint

    model, full, ref, forget, retain = _uninterrupted_and_stopped(tmp_path)
    saved = load_checkpoint(tmp_path)
    assert saved is not None
    del saved["config"]["world_size"]
    save_checkpoint(tmp_path, saved)
    resumed = unlearn(model, forget, retain, epochs=2, batch_size=4, checkpoint_dir=tmp_path,
                      resume=True)
    assert resumed.history == ref.history and _same_params(model, full)


def _checkpointed(tmp_path):
    model, forget, retain = make_classifier_data()
    unlearn(model, forget, retain, epochs=2, batch_size=4, checkpoint_dir=tmp_path, max_steps=2)
    return model, forget, retain


def test_manifest_is_written_after_the_data(tmp_path, monkeypatch) -> None:
    from fastngd.unlearn import checkpoint

    order = []
    original = checkpoint.atomic_write

    def recording(path, write, **kwargs):
        order.append(path.name)
        return original(path, write, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write", recording)
    _checkpointed(tmp_path)
    assert order[:2] == [CHECKPOINT_NAME, CHECKPOINT_NAME + ".sha256"]
    manifest = json.loads((tmp_path / (CHECKPOINT_NAME + ".sha256")).read_text())
    data = (tmp_path / CHECKPOINT_NAME).read_bytes()
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["bytes"] == len(data)


@pytest.mark.parametrize("damage, match", [
    ("flip", "does not match its SHA-256"),
    ("truncate", "truncated"),
    ("empty", "empty"),
    ("foreign", "not a fastngd unlearning checkpoint"),
    ("garbage", "not a readable fastngd checkpoint"),
])
@pytest.mark.filterwarnings("ignore:.*has no checksum file")
def test_damaged_checkpoint_is_refused(tmp_path, damage, match) -> None:
    from fastngd.errors import InputError
    from fastngd.unlearn.checkpoint import save_verified

    model, forget, retain = _checkpointed(tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01  # inside the tensors: torch.load would not notice
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:-100]))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "foreign":
        save_verified(path, {"weights": torch.zeros(2)})  # a valid manifest, a foreign file
    else:
        (tmp_path / (CHECKPOINT_NAME + ".sha256")).unlink()
        path.write_bytes(b"PK\x03\x04 not really a zip file")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(InputError, match=match) as info:
        unlearn(model, forget, retain, epochs=2, batch_size=4, checkpoint_dir=tmp_path,
                resume=True)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_checkpoint_without_manifest_warns_and_resumes(tmp_path) -> None:
    model, full, ref, forget, retain = _uninterrupted_and_stopped(tmp_path)
    (tmp_path / (CHECKPOINT_NAME + ".sha256")).unlink()  # written by an older fastngd
    with pytest.warns(UserWarning, match="no checksum"):
        resumed = unlearn(model, forget, retain, epochs=2, batch_size=4,
                          checkpoint_dir=tmp_path, resume=True)
    assert resumed.history == ref.history and _same_params(model, full)


def test_remove_checkpoint_removes_only_its_files(tmp_path) -> None:
    from fastngd.unlearn import remove_checkpoint

    _checkpointed(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "notes.txt").write_text("mine")
    remove_checkpoint(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["notes.txt"]
    (tmp_path / "ckpt" / "notes.txt").unlink()
    remove_checkpoint(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_a_checkpoint_from_before_the_forget_target_resumes_as_ascent(tmp_path) -> None:
    """A checkpoint written before ``forget_target``/``stop_gap`` existed ran the ascent
    target: it resumes with ``forget_target="ascent"`` and is refused with today's default
    ("refuse"), instead of silently switching objective."""
    model, forget, retain = make_classifier_data()
    base = {"method": "ngdiff", "epochs": 2, "batch_size": 4, "lr": 0.02,
            "forget_target": "ascent", "stop_gap": None}
    unlearn(model, forget, retain, checkpoint_dir=tmp_path, max_steps=2, **base)
    saved = load_checkpoint(tmp_path)
    assert saved is not None
    for key in ("forget_target", "stop_gap"):
        del saved["config"][key]  # as a checkpoint of the earlier release has it
    save_checkpoint(tmp_path, saved)
    with pytest.raises(ValueError, match="another configuration(.|\n)*forget_target"):
        unlearn(model, forget, retain, checkpoint_dir=tmp_path, resume=True,
                **{k: v for k, v in base.items() if k not in ("forget_target", "stop_gap")})
    resumed = unlearn(model, forget, retain, checkpoint_dir=tmp_path, resume=True, **base)
    assert resumed.steps == 2 * math.ceil(len(forget) / 4)
