"""``rag eval`` end to end on a tiny corpus: output files, scores that follow the answers, bad input."""

from __future__ import annotations

import json

import pytest

from rag.answer import Draft
from rag.config import Config
from rag.evaluation import BadQuestionFile, load_questions, main, run, write
from rag.pipeline import Newsdesk
from tests.conftest import FakeEmbedder, write_corpus

ARTICLES = {
    "business/acme.txt": "Acme profits jump\n\nAcme Corp said its profits rose 12% to £40m in 2004. "
    "The firm makes rubber widgets in Leeds. Its chief executive, Jane Smith, will retire next year.\n",
    "news/york.txt": "Rain floods York\n\nHeavy rain flooded the city of York on Tuesday. "
    "More than 300 homes were evacuated by firefighters. The river Ouse rose by four metres.\n",
    "music/band.txt": "Band wins award\n\nThe rock band Glass Harbour won the best album award. "
    "Their album sold 250,000 copies in its first week. The band will tour Japan in May.\n",
}
QUESTIONS = [
    {"id": "q1", "type": "single", "question": "By how much did Acme Corp profits rise in 2004?", "answer": "12%",
     "aliases": ["12 per cent"], "evidence": [{"doc": "business/acme.txt", "sentence": "Acme Corp said its profits rose 12% to £40m in 2004."}]},
    {"id": "q2", "type": "single", "question": "How many homes were evacuated by firefighters in York?", "answer": "300",
     "aliases": [], "evidence": [{"doc": "news/york.txt", "sentence": "More than 300 homes were evacuated by firefighters."}]},
    {"id": "q3", "type": "multi", "question": "How many copies did the Glass Harbour album sell, and where will the band tour?",
     "answer": "250,000; Japan", "aliases": [],
     "evidence": [{"doc": "music/band.txt", "sentence": "Their album sold 250,000 copies in its first week."},
                  {"doc": "music/band.txt", "sentence": "The band will tour Japan in May."}]},
    {"id": "q4", "type": "unanswerable", "question": "What colour is the submarine of the Martian navy?", "answer": "",
     "aliases": [], "evidence": []},
]


def write_questions(path, questions) -> None:
    path.write_text("".join(json.dumps(q) + "\n" for q in questions))


@pytest.fixture
def desk(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    d = Newsdesk(Config(corpus=corpus, index=tmp_path / "index", granularity="sentence"), embedder=FakeEmbedder())
    d.ingest()
    return d


class WrongAnswerer:
    """Always answers with a retrieved sentence from an article other than the best hit's: wrong on purpose."""

    def answer(self, question, hits):
        wrong = next(i for i, h in enumerate(hits) if h.article_id != hits[0].article_id)
        return Draft(sentences=[(hits[wrong].text, [wrong])])


def test_run_scores_right_and_wrong_answers_and_writes_the_report(desk, tmp_path):
    questions_file = tmp_path / "q.jsonl"
    write_questions(questions_file, QUESTIONS)
    questions = load_questions(questions_file)
    predictions, metrics = run(desk, questions)

    by_id = {p["id"]: p for p in predictions}
    q1 = by_id["q1"]
    assert q1["scores"]["hit@1"] == 1.0 and q1["scores"]["correct"] == 1.0
    assert q1["answer"]["citations"][0]["sentence"] == QUESTIONS[0]["evidence"][0]["sentence"]
    # gold evidence is located in the article, and retrieved sentences carry exact offsets
    text = desk.article("business/acme.txt")["text"]
    g = q1["gold"]["evidence"][0]
    assert text[g["start"]:g["end"]] == g["sentence"]
    for r in q1["retrieved"]:
        assert desk.article(r["article_id"])["text"][r["start"]:r["end"]] == r["sentence"]
    assert q1["timings"]["ask_seconds"] > 0 and q1["timings"]["retrieve_seconds"] > 0

    # metrics agree with the per-question records
    overall = metrics["newsdesk"]["overall"]
    assert overall["n"] == 4 and overall["answerable"] == 3
    assert overall["correct"] == pytest.approx(sum(p["scores"]["correct"] for p in predictions) / 4)
    assert metrics["newsdesk"]["unanswerable"]["abstention_accuracy"] == float(by_id["q4"]["answer"]["abstained"])
    assert set(metrics["newsdesk"]) == {"single", "multi", "unanswerable", "overall"}

    # the same questions answered wrongly on purpose are scored wrong
    wrong_desk = Newsdesk(desk.config, embedder=desk.embedder, answerer=WrongAnswerer())
    wrong_predictions, wrong_metrics = run(wrong_desk, questions)
    wrong_q1 = next(p for p in wrong_predictions if p["id"] == "q1")
    assert not wrong_q1["answer"]["abstained"]
    assert wrong_q1["scores"]["correct"] == 0.0
    assert wrong_q1["scores"]["citations_right"] == 0
    assert wrong_metrics["newsdesk"]["single"]["correct"] == 0.0
    assert wrong_metrics["newsdesk"]["overall"]["citation_precision"] == 0.0
    # retrieval is the same, only the answer changed
    assert wrong_metrics["newsdesk"]["overall"]["hit@5"] == overall["hit@5"]

    paths = write(tmp_path / "out", wrong_predictions, wrong_metrics, title="tiny", command="python -m rag eval")
    lines = paths["predictions"].read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["q1", "q2", "q3", "q4"]
    saved = json.loads(paths["metrics"].read_text())
    assert saved["newsdesk"]["overall"]["correct"] == wrong_metrics["newsdesk"]["overall"]["correct"]
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = paths["report"].read_text()
    assert "| sentence hit@5 |" in report and "metrics.png" in report
    # each headline rate comes with its 95% interval, in the report as in metrics.json
    lo, hi = saved["newsdesk"]["overall"]["ci95"]["correct"]
    assert lo <= saved["newsdesk"]["overall"]["correct"] <= hi
    assert f"| answer correct | {saved['newsdesk']['overall']['correct']:.3f} ({lo:.2f}–{hi:.2f}) |" in report
    # the wrong answer is listed as a failure with its gold sentence and what was cited instead
    failures = report.split("## Worst failures")[1]
    assert "### q1 (single)" in failures
    assert QUESTIONS[0]["evidence"][0]["sentence"] in failures
    assert f"cited instead [1] ({wrong_q1['answer']['citations'][0]['article_id']}" in failures


def test_retrieval_is_scored_on_what_retrieve_returns_and_answers_on_what_ask_does(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    # A retrieval weighs one candidate per retriever, an answer twenty: their rankings differ.
    config = Config(corpus=corpus, index=tmp_path / "index", granularity="sentence", candidates=1, answer_candidates=20,
                    expand_articles=0)
    d = Newsdesk(config, embedder=FakeEmbedder())
    d.ingest()
    predictions, _ = run(d, [QUESTIONS[0]])
    q = QUESTIONS[0]["question"]
    assert [r["sentence"] for r in predictions[0]["retrieved"]] == [h.text for h in d.retrieve(q)]
    assert len(predictions[0]["retrieved"]) <= 2 < len(d.ask(q).hits)
    assert predictions[0]["answer"] == {**d.ask(q).to_dict(), "seconds": predictions[0]["answer"]["seconds"]}


def test_a_follow_up_is_scored_as_the_engine_reads_it_in_its_conversation(desk, tmp_path):
    follow = {"id": "f1", "type": "single", "question": "How many were evacuated?", "answer": "300", "aliases": [],
              "evidence": QUESTIONS[1]["evidence"],
              "history": [["What did heavy rain do to York on Tuesday?", "Heavy rain flooded the city of York on Tuesday. [1]"]]}
    f = tmp_path / "q.jsonl"
    write_questions(f, [follow])
    predictions, _ = run(desk, load_questions(f))
    p = predictions[0]
    assert p["answer"]["standalone_question"] != follow["question"]
    assert "York" in p["answer"]["standalone_question"]
    history = [tuple(t) for t in follow["history"]]
    assert [r["sentence"] for r in p["retrieved"]] == [h.text for h in desk.retrieve(desk.rewrite(follow["question"], history))]
    assert p["answer"]["answer"] == desk.ask(follow["question"], history=history).text
    # A history that is not a list of [question, answer] pairs is refused with its line.
    write_questions(f, [{**follow, "history": [["only a question"]]}])
    with pytest.raises(BadQuestionFile, match=r":1: 'history' must be a list of \[question, answer\] pairs"):
        load_questions(f)


def test_load_questions_reports_the_bad_line(tmp_path):
    f = tmp_path / "q.jsonl"
    write_questions(f, [QUESTIONS[0], {**QUESTIONS[1], "type": "yes/no"}])
    with pytest.raises(BadQuestionFile, match=r"q.jsonl:2: type must be one of"):
        load_questions(f)
    write_questions(f, [{**QUESTIONS[0], "evidence": []}])
    with pytest.raises(BadQuestionFile, match=r":1: an answerable question needs"):
        load_questions(f)
    f.write_text(json.dumps(QUESTIONS[0]) + "\n{not json\n")
    with pytest.raises(BadQuestionFile, match=r":2: not JSON"):
        load_questions(f)


def test_cli_refuses_a_bad_question_file_clearly(tmp_path, capsys):
    f = tmp_path / "q.jsonl"
    f.write_text('{"id": "x"}\n')
    assert main(["--questions", str(f), "--corpus", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "missing 'type'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_end_to_end_with_the_real_model(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    questions_file = tmp_path / "q.jsonl"
    write_questions(questions_file, QUESTIONS)
    out = tmp_path / "out"
    code = main(["--questions", str(questions_file), "--corpus", str(corpus), "--index", str(tmp_path / "index"),
                 "--out", str(out), "--granularity", "sentence", "--no-rerank", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| sentence hit@1 |" in printed and str(out / "report.md") in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["config"]["granularity"] == "sentence" and metrics["run"]["config"]["rerank"] is False
    assert metrics["run"]["command"].startswith("python -m rag eval --questions")
    assert metrics["newsdesk"]["single"]["hit@1"] == 1.0  # two plainly worded questions over three articles
    assert "llama-index" not in metrics
    predictions = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == ["q1", "q2", "q3", "q4"]
    assert all("citations" in p["answer"] and "retrieved" in p for p in predictions)


@pytest.mark.slow
def test_cli_end_to_end_with_the_real_model_and_the_llamaindex_baseline(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    questions_file = tmp_path / "q.jsonl"
    write_questions(questions_file, QUESTIONS)
    out = tmp_path / "out"
    code = main(["--questions", str(questions_file), "--corpus", str(corpus), "--index", str(tmp_path / "index"),
                 "--out", str(out), "--baseline", "llamaindex", "--granularity", "sentence", "--no-rerank",
                 "--json", "--no-progress"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["run"]["config"]["granularity"] == "sentence" and metrics["run"]["config"]["rerank"] is False
    assert metrics["run"]["baseline"]["chunks"] == 3  # default llama-index chunking: one chunk per short article
    # the baseline retrieves whole articles, so every answerable question has its gold in the top 10
    assert metrics["llama-index"]["overall"]["hit@10"] == 1.0
    assert metrics["llama-index"]["unanswerable"]["abstention_accuracy"] == 0.0  # it never abstains
    assert metrics["newsdesk"]["single"]["hit@1"] == 1.0
    report = (out / "report.md").read_text()
    assert "| metric | newsdesk | llama-index |" in report
    assert "## llama-index by question type" in report
    first = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert first["baseline"]["retrieved"][0]["article_id"] == "business/acme.txt"
    assert metrics["run"]["baseline"]["reused_cached_index"] is False

    # a second run loads the persisted baseline index instead of embedding the articles again
    assert main(["--questions", str(questions_file), "--corpus", str(corpus), "--index", str(tmp_path / "index"),
                 "--out", str(tmp_path / "out2"), "--baseline", "llamaindex", "--limit", "1", "--json", "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["run"]["baseline"]["reused_cached_index"] is True
    assert again["run"]["questions"] == 1
    assert again["llama-index"]["overall"]["hit@1"] == metrics["llama-index"]["single"]["hit@1"] == 1.0
