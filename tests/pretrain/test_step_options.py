"""The speed options of a training step (pretrain/step.py): each gives the update of the plain step."""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.testing import assert_close

from saccade.episode_config import EpisodeConfig
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.data import collate, synthetic_dataset
from saccade.pretrain.state import build_model
from saccade.pretrain.step import StepLosses, autocast_for, resolve_precision, training_step

EPISODE = EpisodeConfig(scene_px=64, glimpse_px=32, canvas_grid=4, num_glimpses=4)
CONFIG = PretrainConfig(model="canvit-tiny", episode=EPISODE, batch_size=8, standardizer_samples=16, continue_prob=0.5)


def _model_and_batch(config: PretrainConfig = CONFIG):
    data = synthetic_dataset(16, scene_px=64, grid=4, dim=16)
    model = build_model(config, 16)
    fit = collate(data, list(range(16)))
    model.teacher_patch_standardizer.fit(fit.patches)
    model.teacher_cls_standardizer.fit(fit.cls)
    return model, collate(data, list(range(config.batch_size)))


def _step(model, batch, config: PretrainConfig, seed: int = 3) -> tuple[StepLosses, dict[str, torch.Tensor]]:
    """One step from zero gradients -> (losses, {name: gradient})."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # drop-path draws
    losses = training_step(model, batch, config=config, generator=torch.Generator().manual_seed(seed))
    return losses, {name: param.grad.clone() for name, param in model.named_parameters() if param.grad is not None}


def _assert_same_update(actual, expected, *, atol: float, rtol: float = 0.0) -> None:
    (losses_a, grads_a), (losses_e, grads_e) = actual, expected
    assert losses_a.num_glimpses == losses_e.num_glimpses
    assert_close(losses_a.values, losses_e.values, atol=atol, rtol=rtol)
    assert grads_a.keys() == grads_e.keys()
    for name in grads_e:
        assert_close(grads_a[name], grads_e[name], atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}")


def test_two_half_batches_give_the_update_of_one_batch():
    model, batch = _model_and_batch()
    whole = _step(model, batch, CONFIG)
    halves = _step(model, batch, dataclasses.replace(CONFIG, accumulation_steps=2))
    quarters = _step(model, batch, dataclasses.replace(CONFIG, accumulation_steps=4))
    _assert_same_update(halves, whole, atol=1e-6, rtol=1e-5)
    _assert_same_update(quarters, whole, atol=1e-6, rtol=1e-5)


def test_accumulation_steps_must_divide_the_batch():
    with pytest.raises(ValueError, match=r"accumulation_steps=3 must divide batch_size=8"):
        dataclasses.replace(CONFIG, accumulation_steps=3)
    model, _ = _model_and_batch()
    two_ranks_of_4 = collate(synthetic_dataset(4, scene_px=64, grid=4, dim=16), [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"accumulation_steps=8 must divide this rank's batch of 4"):
        training_step(
            model,
            two_ranks_of_4,
            config=dataclasses.replace(CONFIG, accumulation_steps=8),
            generator=torch.Generator().manual_seed(0),
            rank_slice=slice(0, 4),
            global_batch_size=8,
        )


@pytest.mark.parametrize("drop_path", [0.0, 0.2])
def test_activation_checkpointing_gives_the_same_gradients(drop_path):
    config = dataclasses.replace(CONFIG, drop_path=drop_path)
    model, batch = _model_and_batch(config)
    plain = _step(model, batch, config)
    checkpointed = _step(model, batch, dataclasses.replace(config, checkpoint_blocks=True))
    assert all(block.checkpoint_activations for block in model.canvit.backbone.blocks)
    # the recomputation repeats the forward's arithmetic and, with drop-path, its random draws
    _assert_same_update(checkpointed, plain, atol=1e-6, rtol=1e-6)


class _HostReads(TorchFunctionMode):
    """Records Python-level reads of tensor values (on an accelerator each waits for the device) by call stack."""

    READS = ("item", "__bool__", "tolist", "__float__", "__int__", "__index__")

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.READS:
            stack = traceback.extract_stack()[:-1]
            # the host generator's draws (rollout lengths, training viewpoints) read host tensors only
            if not any(frame.name == "draw_num_glimpses" or "/policies/" in frame.filename for frame in stack):
                self.reads.append(" <- ".join(f"{Path(f.filename).name}:{f.name}" for f in reversed(stack[-4:])))
        return func(*args, **(kwargs or {}))


def test_a_step_reads_no_value_back_from_the_device():
    """On an accelerator a read of a device value waits for it; the step leaves every read to the logging steps."""
    model, batch = _model_and_batch()
    with _HostReads() as first:
        _step(model, batch, CONFIG)
    assert any("_check_fitted" in read for read in first.reads)  # the detector sees reads: the fitted flag, once
    with _HostReads() as second:
        losses, _ = _step(model, batch, CONFIG)
    assert second.reads == []
    assert losses.values.dtype == torch.float64 and losses.metrics().num_glimpses == losses.num_glimpses


def test_precision_auto_is_bfloat16_on_cuda_only_and_bfloat16_runs_on_cpu():
    assert resolve_precision("auto", torch.device("cuda")) == "bfloat16"
    assert resolve_precision("auto", torch.device("cpu")) == "float32"
    assert isinstance(autocast_for("bfloat16", torch.device("cpu")), torch.autocast)
    model, batch = _model_and_batch()
    full, _ = _step(model, batch, CONFIG)
    half, _ = _step(model, batch, dataclasses.replace(CONFIG, precision="bfloat16"))
    assert_close(half.values, full.values, atol=0.05, rtol=0.05)  # bf16 rounding of the backbone only
    with pytest.raises(ValueError, match=r"PretrainConfig.precision must be one of .* got 'fp16'"):
        dataclasses.replace(CONFIG, precision="fp16")


@pytest.mark.slow  # compiling takes ~50 s on 1 CPU thread (a warm Inductor cache: less)
def test_compiled_step_matches_eager_within_1e_5(capsys):
    """torch.compile of the per-glimpse forward: the same losses and gradients in float32 on CPU."""
    model, batch = _model_and_batch()
    eager = _step(model, batch, CONFIG)
    started = time.perf_counter()
    compiled = _step(model, batch, dataclasses.replace(CONFIG, compile=True))
    with capsys.disabled():
        print(f"\ncompiled step (compile included): {time.perf_counter() - started:.1f} s")
    _assert_same_update(compiled, eager, atol=1e-5)


def test_the_cli_takes_the_step_options_and_records_them(tmp_path):
    from tests.pretrain.test_run_guards import TINY_FLAGS

    from saccade.cli import main

    options = ["--accumulation-steps", "2", "--checkpoint-blocks", "--precision", "float32", "--tracker", "none"]
    assert main(["pretrain", *TINY_FLAGS, "--steps", "2", *options, "--output-dir", str(tmp_path)]) == 0
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert (recorded["accumulation_steps"], recorded["checkpoint_blocks"], recorded["compile"]) == (2, True, False)
    assert (recorded["precision"], recorded["tracker"]) == ("float32", "none")
    assert not (tmp_path / "tensorboard").exists()
