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


@pytest.mark.slow
def test_onnx_backends_export_once_and_match_torch(tmp_path, real_embedder):
    torch_vectors = real_embedder.embed(TEXTS)
    onnx = SentenceTransformerEmbedder(backend="onnx", cache_dir=tmp_path)
    v = onnx.embed(TEXTS)
    assert v.shape == (4, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.all((v * torch_vectors).sum(axis=1) > 0.999)  # same model, same pooling

    exported = sorted(p.name for p in tmp_path.rglob("*.onnx"))
    assert exported == ["model.onnx"]
    mtime = next(tmp_path.rglob("model.onnx")).stat().st_mtime_ns

    int8 = SentenceTransformerEmbedder(backend="onnx-int8", cache_dir=tmp_path)
    q = int8.embed(TEXTS)
    cos = (q * torch_vectors).sum(axis=1)
    assert cos.mean() > 0.97 and cos.min() > 0.94  # quantised: close, not equal (short texts move most)
    # a second embedder reuses the exports instead of exporting again
    again = SentenceTransformerEmbedder(backend="onnx", cache_dir=tmp_path).embed(TEXTS[:1])
    assert np.allclose(again, v[:1], atol=1e-6)
    assert next(tmp_path.rglob("model.onnx")).stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.rglob("*.onnx")) == ["model-int8.onnx", "model.onnx"]


def test_unknown_backend_is_refused_clearly():
    with pytest.raises(ValueError, match="unknown embedding backend 'tpu'"):
        SentenceTransformerEmbedder(backend="tpu")
