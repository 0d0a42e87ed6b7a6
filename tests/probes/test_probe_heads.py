"""Probe heads: shapes, the DINOv3 init, config validation, safetensors round trip, the authors' probe weights."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.testing import assert_close

from saccade.episode import rollout
from saccade.policies import make_policy
from saccade.probes import (
    ClassificationProbe,
    ProbeConfig,
    SegmentationProbe,
    build_probe,
    load_probe,
    read_probe_info,
    save_probe,
)


def seg_config(**kwargs) -> ProbeConfig:
    return ProbeConfig(**{"task": "segmentation", "in_dim": 96, "num_classes": 6, **kwargs})


def test_segmentation_probe_shapes_and_init():
    torch.manual_seed(0)
    probe = SegmentationProbe(seg_config(in_dim=256, num_classes=150))
    assert probe(torch.randn(2, 4, 4, 256)).shape == (2, 150, 4, 4)
    assert float(probe.conv.weight.detach().std()) == pytest.approx(0.01, rel=0.05)
    assert float(probe.conv.bias.detach().abs().max()) == 0.0
    assert isinstance(probe.dropout, torch.nn.Dropout2d) and probe.dropout.p == 0.1
    without_ln = SegmentationProbe(seg_config(layer_norm=False))
    assert without_ln.ln is None and not any(key.startswith("ln.") for key in without_ln.state_dict())
    with pytest.raises(ValueError, match=r"features must be \[B, G, G, 96\]"):
        without_ln(torch.randn(2, 96, 4, 4))


def test_classification_probe_shapes():
    probe = build_probe(ProbeConfig(task="classification", in_dim=64, num_classes=10))
    assert isinstance(probe, ClassificationProbe)
    assert probe(torch.randn(3, 64)).shape == (3, 10)
    assert probe(torch.randn(3, 1, 64)).shape == (3, 10)  # a recurrent CLS as it comes


@pytest.mark.parametrize(
    ("field", "value"),
    [("task", "detection"), ("in_dim", 0), ("num_classes", 1.5), ("dropout", 1.0), ("layer_norm", "yes")],
)
def test_probe_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"ProbeConfig.{field}"):
        seg_config(**{field: value})


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    probe = SegmentationProbe(seg_config())
    probe.train()
    for _ in range(3):  # move the BatchNorm running statistics away from their init
        probe(torch.randn(4, 8, 8, 96) * 3 + 1)
    probe.eval()
    path = save_probe(probe, tmp_path / "probe.safetensors", info={"trained_on": "unit test"})
    loaded = load_probe(path)
    features = torch.randn(2, 8, 8, 96)
    assert isinstance(loaded, SegmentationProbe) and not loaded.training
    assert loaded.config == probe.config
    assert_close(loaded(features), probe(features), rtol=0, atol=0)
    assert read_probe_info(path) == {"trained_on": "unit test"}


def test_load_rejects_foreign_and_mismatched_files(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="is not a saccade probe"):
        load_probe(tmp_path / "other.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match=r"garbage\.safetensors"):
        load_probe(tmp_path / "garbage.safetensors")
    with pytest.raises(FileNotFoundError):
        load_probe(tmp_path / "missing.safetensors")


@pytest.mark.reference
def test_authors_probe_weights_load_and_decode_like_theirs(reference):
    """The authors' random 6-class probe (their key names) loads strictly and reproduces their EG-C2F rollout."""
    from tests.model.test_reference_parity import load_reference_model

    probe = SegmentationProbe(seg_config()).eval()
    probe.load_state_dict(reference["seg_probe"], strict=True)
    model, recorded = load_reference_model(), reference["eg_c2f"]

    def decode(state):
        return probe(state.canvas_patch_grid())  # [B, C, G, G]

    policy = make_policy("EG-C2F", batch_size=2, canvas_to_probs=decode, from_logits=True)
    steps = rollout(model, reference["inputs"]["scenes"], policy, num_glimpses=8, glimpse_px=32, canvas_grid=8)
    with torch.no_grad():
        logits = torch.stack([decode(step.state) for step in steps])  # [T, B, C, G, G]
    assert_close(logits, recorded["eg_c2f.logits_after"], atol=1e-5, rtol=0)
    viewpoints = torch.stack([step.viewpoint.to_yxs() for step in steps])
    assert_close(viewpoints, recorded["eg_c2f.viewpoints"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_probes_decode_in_float32_under_autocast(task):
    """A caller's autocast rounds the features it made, never the probe's own LayerNorm, BatchNorm and logits."""
    torch.manual_seed(0)
    probe = build_probe(ProbeConfig(task=task, in_dim=96, num_classes=1000)).eval()
    with torch.no_grad():
        for param in probe.parameters():
            param.normal_()
    shape = (4, 3, 3, 96) if task == "segmentation" else (4, 96)
    features = torch.randn(shape).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = probe(features)
    assert logits.dtype == torch.float32
    assert_close(logits, probe(features.float()), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("config", "{not json", r"metadata 'config' is not valid JSON"),
        ("info", "[1, 2", r"metadata 'info' is not valid JSON"),
        ("config", "[1, 2]", r"metadata 'config' must be a JSON object, got list"),
        ("format_version", "one", r"metadata 'format_version' must be an integer, got 'one'"),
    ],
)
def test_damaged_probe_metadata_names_the_file_and_the_problem(tmp_path, key, value, problem):
    path = save_probe(SegmentationProbe(seg_config()), tmp_path / "probe.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    save_file(tensors, str(path), metadata={**metadata, key: value})
    with pytest.raises(ValueError, match=rf"probe\.safetensors: {problem}"):
        load_probe(path)


def test_probe_with_non_finite_weights_is_refused(tmp_path):
    probe = SegmentationProbe(seg_config())
    with torch.no_grad():
        probe.conv.bias[2] = float("nan")
    path = save_probe(probe, tmp_path / "probe.safetensors")
    with pytest.raises(ValueError, match=r"1 non-finite tensor\(s\): conv\.bias \(1 NaN\)"):
        load_probe(path)
