"""Train the reader (rag/reader.py): a cross-encoder fine-tuned from all-MiniLM-L6-v2.

    .venv/bin/python eval/train_reader.py --index /work/idx/bbc --corpus ../shared/datasets/bbc-news \\
        --questions eval/questions/bbc-train.jsonl --out rag/models/reader

For each training question the engine retrieves as usual, without the reader; the 30 best
candidates of its second stage are the examples: the gold sentence is the positive, seven other
candidates (most of them from the same story) are the negatives, and an unanswerable question
has negatives only. Each passage is the sentence headed by its article's title
(``rag.reader.passage``); with ``--context``, also the sentence before it. Loss: binary cross-entropy on every pair, plus softmax cross-entropy
over each question's group. Two epochs, learning rate 3e-5, seed 0; 23 minutes for the 1,477
questions on two idle CPU cores. The model is then exported to ONNX and its weights quantised to
int8 (``model-int8.onnx``, 23 MB) next to its ``tokenizer.json`` and ``reader.json``.

The shipped model is the output of the command above (with ``--out /tmp/reader-v2``, then
copied), run with the defaults of the commit that added it: the packaged model as the start,
the packaged model's index for the candidates. ``--init rag/models/embedder`` starts from the
shipped embedder instead (tried in session 9 with its index, ``/work/idx/bbc-ship``: not
better on held-out questions; eval/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rag.config import Config  # noqa: E402
from rag.embedding import export_transformer, packaged_model_path, quantize_int8  # noqa: E402
from rag.evaluation import gold_spans, load_questions  # noqa: E402
from rag.pipeline import Newsdesk  # noqa: E402
from rag.reader import CONTEXT_MAX_TOKENS, MAX_TOKENS, passage_in  # noqa: E402
from tune import collect_rows, open_desk  # noqa: E402

CANDIDATES = 30
NEGATIVES = 7


def examples(desk: Newsdesk, config: Config, questions, context: bool = False) -> list[dict]:
    """Per question: its passages in second-stage order and which of them answer it."""
    golds = [gold_spans(desk, q) for q in questions]
    rows = collect_rows(desk, config, questions, desk.embed([q["question"] for q in questions]), golds)
    lib = desk.store.library()
    out = []
    for q, (x, gold, kept) in zip(questions, rows):
        order = np.argsort(-(x @ np.asarray(config.rerank_weights)), kind="stable")[:CANDIDATES]
        texts = [lib.sentence(kept[i].article_id, kept[i].index).text for i in order]
        positive = {t for t, i in zip(texts, order) if gold[i]}
        # A duplicated story repeats the gold sentence in another article: that copy is no negative.
        keep = [j for j, i in enumerate(order) if gold[i] or texts[j] not in positive]
        out.append({
            "question": q["question"],
            "passages": [passage_in(lib, kept[order[j]].article_id, kept[order[j]].index, context) for j in keep],
            "gold": np.array([bool(gold[order[j]]) for j in keep]),
        })
    return out


def train(groups: list[dict], epochs: int = 2, lr: float = 3e-5, seed: int = 0, layers: int | None = None,
          max_tokens: int = MAX_TOKENS, init: Path | None = None):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(seed)
    path = init or packaged_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)  # a new one-logit head
    if layers:
        # A shallower reader reads faster: keep the first ``layers`` of the six transformer layers.
        model.bert.encoder.layer = model.bert.encoder.layer[:layers]
        model.config.num_hidden_layers = layers
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * len(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / (0.1 * steps)) * max(0.0, 1 - i / steps))
    model.train()
    start = time.time()
    for epoch in range(epochs):
        total = 0.0
        for g in rng.permutation(len(groups)):
            group = groups[g]
            pos = [i for i, y in enumerate(group["gold"]) if y]
            neg = list(rng.permutation([i for i, y in enumerate(group["gold"]) if not y])[:NEGATIVES])
            chosen = ([int(rng.choice(pos))] if pos else []) + neg
            if not chosen:
                continue
            enc = tokenizer([group["question"]] * len(chosen), [group["passages"][i] for i in chosen],
                            truncation="only_second", max_length=max_tokens, padding=True, return_tensors="pt")
            logits = model(**enc).logits[:, 0]
            labels = torch.zeros(len(chosen))
            if pos:
                labels[0] = 1.0
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            if pos:
                loss = loss + torch.nn.functional.cross_entropy(logits[None], torch.tensor([0]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"epoch {epoch + 1}: mean loss {total / len(groups):.3f} ({time.time() - start:.0f} s)", flush=True)
    return model.eval(), tokenizer


def export(model, tokenizer, out: Path, settings: dict) -> None:
    """``out/model-int8.onnx`` (the model with int8 weights), ``out/tokenizer.json`` and how it reads, ``out/reader.json``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "reader.json").write_text(json.dumps(settings) + "\n", encoding="utf-8")
    fp32 = out / "model-fp32.onnx"
    export_transformer(model, fp32, "logits", {0: "batch"})
    quantize_int8(fp32, out / "model-int8.onnx")
    fp32.unlink()
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--questions", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for model-int8.onnx and tokenizer.json")
    p.add_argument("--weights", help="second-stage weights that order the candidates, comma-separated (default: the current ones)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--layers", type=int, help="keep only the first N of the model's 6 transformer layers (faster, see eval/README.md)")
    p.add_argument("--context", action="store_true", help="the reader also reads the sentence before each sentence")
    p.add_argument("--init", type=Path, help="the model to start from (default: the packaged all-MiniLM-L6-v2), e.g. rag/models/embedder")
    p.add_argument("--limit", type=int, help="only the first N questions (a quick check of the script)")
    args = p.parse_args()
    config = Config(index=args.index, corpus=args.corpus, reader=False)
    if args.weights:
        config = config.with_(rerank_weights=tuple(float(w) for w in args.weights.split(",")))
    questions = [q for path in args.questions for q in load_questions(path) if q["type"] in ("single", "unanswerable")]
    questions = questions[: args.limit] if args.limit else questions
    groups = examples(open_desk(config), config, questions, context=args.context)
    print(f"{len(groups)} questions, {sum(g['gold'].any() for g in groups)} with a gold sentence among the {CANDIDATES} best", flush=True)
    settings = {"context": args.context, "max_tokens": CONTEXT_MAX_TOKENS if args.context else MAX_TOKENS}
    model, tokenizer = train(groups, epochs=args.epochs, layers=args.layers, max_tokens=settings["max_tokens"], init=args.init)
    export(model, tokenizer, args.out, settings)
    print(f"wrote {args.out / 'model-int8.onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
