"""The ONNX backends: exported offline once, reused after, and close to the torch vectors."""

from __future__ import annotations

import numpy as np
import pytest

from rag.embedding import SentenceTransformerEmbedder

TEXTS = [
    "Acme Corp said its profits rose 12% to £40m in 2004.",
    "Heavy rain flooded the city of York on Tuesday.",
    "Ok.",
    "A much longer sentence about markets and weather " * 60,  # beyond the 256-token limit
]


@pytest.fixture(scope="module")
def torch_vectors():
    return SentenceTransformerEmbedder(backend="torch").embed(TEXTS)


def test_default_onnx_backend_exports_once_and_gives_the_torch_vectors(tmp_path, torch_vectors):
    onnx = SentenceTransformerEmbedder(cache_dir=tmp_path)  # the default backend
    assert onnx.backend == "onnx"
    v = onnx.embed(TEXTS)
    assert v.shape == (4, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # same model, same pooling: an index built with torch is queried with ONNX and vice versa
    assert np.allclose(v, torch_vectors, atol=1e-5)

    exported = sorted(p.name for p in tmp_path.rglob("*.onnx"))
    assert exported == ["model.onnx"]
    mtime = next(tmp_path.rglob("model.onnx")).stat().st_mtime_ns
    # a second embedder reuses the export instead of exporting again
    again = SentenceTransformerEmbedder(backend="onnx", cache_dir=tmp_path).embed(TEXTS[:1])
    assert np.allclose(again, v[:1], atol=1e-6)
    assert next(tmp_path.rglob("model.onnx")).stat().st_mtime_ns == mtime


def test_an_unwritable_export_folder_falls_back_to_torch_with_a_warning(tmp_path, torch_vectors):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the export folder would go")
    embedder = SentenceTransformerEmbedder(backend="onnx", cache_dir=blocked)
    with pytest.warns(RuntimeWarning, match="embedding with torch instead"):
        v = embedder.embed(TEXTS)
    assert embedder.backend == "torch"
    assert np.allclose(v, torch_vectors, atol=1e-5)


@pytest.mark.slow
def test_int8_backend_is_close_to_torch_and_reuses_the_fp32_export(tmp_path, torch_vectors):
    q = SentenceTransformerEmbedder(backend="onnx-int8", cache_dir=tmp_path).embed(TEXTS)
    cos = (q * torch_vectors).sum(axis=1)
    assert cos.mean() > 0.97 and cos.min() > 0.94  # quantised: close, not equal (short texts move most)
    assert sorted(p.name for p in tmp_path.rglob("*.onnx")) == ["model-int8.onnx", "model.onnx"]


def test_unknown_backend_is_refused_clearly():
    with pytest.raises(ValueError, match="unknown embedding backend 'tpu'"):
        SentenceTransformerEmbedder(backend="tpu")
