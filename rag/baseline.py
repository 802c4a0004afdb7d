"""A plain llama-index pipeline over the same articles, to compare the engine against.

``VectorStoreIndex.from_documents`` with llama-index's default chunking (SentenceSplitter,
1024-token chunks), the same embedding model (by default the shipped one) through ``HuggingFaceEmbedding``, and
its retriever only: no LLM is involved and llama-index's global ``Settings`` are never touched
(every model is passed explicitly). Its "answer" is the text of the top chunk and its citation is
that chunk, so answer correctness and citation precision compare like for like.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rag.embedding import resolve_model_path
from rag.types import Article, content_hash


@dataclass(frozen=True)
class Chunk:
    """A retrieved llama-index chunk: its article, character span in the article text, text, score."""

    article_id: str
    start: int | None
    end: int | None
    text: str
    score: float

    def to_dict(self) -> dict:
        return {"article_id": self.article_id, "start": self.start, "end": self.end, "text": self.text,
                "score": round(self.score, 4)}


class LlamaIndexBaseline:
    """Build once over ``articles`` with ``build()``, then ``retrieve(question)`` the top-k chunks."""

    name = "llama-index"

    def __init__(self, model_path: str | None = None, top_k: int = 10) -> None:
        self.model_path = model_path
        self.top_k = top_k
        self.index = None
        self.chunks = 0
        self.mean_chunk_chars = 0.0
        self.build_seconds = 0.0
        self.reused = False
        self.load_seconds = 0.0
        self._embed_model = None
        self._retriever = None

    def load(self):
        """The llama-index embedding model over the same model files, loaded once."""
        if self._embed_model is None:
            from llama_index.embeddings.huggingface import HuggingFaceEmbedding

            t0 = time.perf_counter()
            self._embed_model = HuggingFaceEmbedding(model_name=resolve_model_path(self.model_path), device="cpu")
            self._embed_model.get_text_embedding("warm up")
            self.load_seconds = time.perf_counter() - t0
        return self._embed_model

    def build(self, articles: list[Article], progress: bool = False, cache_dir: Path | None = None) -> float:
        """Index ``articles`` the plain way; returns the seconds it took (model loading excluded).

        With ``cache_dir``, an index persisted there for the very same articles and model is
        loaded instead, and a new one is persisted; ``reused`` tells which happened.
        """
        from llama_index.core import Document, StorageContext, VectorStoreIndex, load_index_from_storage

        embed_model = self.load()
        t0 = time.perf_counter()
        key = content_hash(resolve_model_path(self.model_path), *sorted(f"{a.id}:{a.hash}" for a in articles))
        folder = Path(cache_dir) / f"llamaindex-{key}" if cache_dir else None
        self.reused = bool(folder and (folder / "docstore.json").exists())
        if self.reused:
            self.index = load_index_from_storage(StorageContext.from_defaults(persist_dir=str(folder)), embed_model=embed_model)
        else:
            # The title goes in as metadata, as a reader of front matter would put it; llama-index
            # embeds metadata with the text by default and keeps offsets relative to the text.
            docs = [Document(text=a.text, id_=a.id, metadata={"title": a.title} if a.title else {}) for a in articles]
            self.index = VectorStoreIndex.from_documents(docs, embed_model=embed_model, show_progress=progress)
            if folder:
                tmp = folder.with_name(folder.name + ".tmp")
                self.index.storage_context.persist(persist_dir=str(tmp))
                tmp.replace(folder)
        nodes = list(self.index.docstore.docs.values())
        self.chunks = len(nodes)
        self.mean_chunk_chars = sum(len(n.get_content()) for n in nodes) / len(nodes) if nodes else 0.0
        self._retriever = self.index.as_retriever(similarity_top_k=self.top_k)
        self.build_seconds = time.perf_counter() - t0
        return self.build_seconds

    def retrieve(self, question: str) -> list[Chunk]:
        """The top-k chunks for ``question``, best first."""
        if self._retriever is None:
            raise RuntimeError("call build(articles) first")
        out = []
        for n in self._retriever.retrieve(question):
            node = n.node
            out.append(Chunk(node.ref_doc_id or "", node.start_char_idx, node.end_char_idx, node.get_content(), float(n.score or 0.0)))
        return out
