"""Shared fixtures: a deterministic fake embedder, small corpora, the real embedder once per run."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "corpus"
BBC = ROOT.parent / "shared" / "datasets" / "bbc-news"


class FakeEmbedder:
    """Bag-of-words hashing into 384 dimensions: deterministic, instant, and texts sharing words are close."""

    dim = 384

    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0

    def embed(self, texts, progress: bool = False) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[row, h % self.dim] += 1.0
            out[row, 0] += 1e-3  # never a zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    """The default embedder (the shipped model, ONNX backend), loaded once for the whole run."""
    from rag.embedding import SentenceTransformerEmbedder

    e = SentenceTransformerEmbedder()
    e.embed(["warm up"])
    return e


def eval_script(name: str):
    """A script of eval/ (a folder of scripts, not a package) loaded as a module, e.g. ``eval_script("compare")``."""
    spec = importlib.util.spec_from_file_location(f"newsdesk_eval_{name}", ROOT / "eval" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def write_corpus(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    return folder


def snapshot(store) -> dict:
    """Everything a ``rag.store.Store`` holds, comparable across runs and folders (ids, texts, metadata, vectors)."""
    chunks = store.chunks.get(include=["documents", "metadatas", "embeddings"])
    arts = store.articles.get(include=["documents", "metadatas"])
    return {
        "chunks": sorted(
            (i, d, json.dumps(m, sort_keys=True), tuple(round(float(x), 5) for x in e[:8]))
            for i, d, m, e in zip(chunks["ids"], chunks["documents"], chunks["metadatas"], chunks["embeddings"])
        ),
        "articles": sorted((i, d, json.dumps(m, sort_keys=True)) for i, d, m in zip(arts["ids"], arts["documents"], arts["metadatas"])),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shipped_copy(tmp_path) -> Path:
    """A private copy of the shipped corpus (tests may add or change files)."""
    return write_corpus(tmp_path / "corpus", {p.name: p.read_bytes() for p in SHIPPED.iterdir() if p.is_file()})
