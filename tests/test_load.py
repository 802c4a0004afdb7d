"""Load: simulated users asking the real app through gradio_client, with eval/load.py's own code, small."""

from __future__ import annotations

import json

import pytest
from tests.conftest import eval_script

pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def load():
    """eval/load.py as a module."""
    return eval_script("load")


ARTICLE = "Lab closes\nAmazon closed its Shanghai lab. It opened in 2018."


def good_answer() -> dict:
    return {"question": "q", "standalone_question": "q", "answer": "Amazon closed its Shanghai lab [1].", "abstained": False,
            "citations": [{"n": 1, "article_id": "a.txt", "source": "Wire", "sentence": "Amazon closed its Shanghai lab.",
                           "start": 11, "end": 42}]}


def test_answer_check_catches_citations_that_do_not_hold(load):
    text = {"a.txt": ARTICLE}.__getitem__
    assert load.answer_problems(good_answer(), text) == []
    assert load.answer_problems(good_answer(), text, sources=["Wire"]) == []

    shifted = good_answer()
    shifted["citations"][0]["start"] += 1
    assert "is not the cited sentence" in load.answer_problems(shifted, text)[0]
    unmarked = good_answer() | {"answer": "Amazon closed its Shanghai lab."}
    assert "not marked" in load.answer_problems(unmarked, text)[0]
    assert "outside the filter" in load.answer_problems(good_answer(), text, sources=["Other"])[0]
    uncited = good_answer() | {"citations": []}
    assert load.answer_problems(uncited, text) == ["answered without citations"]
    abstained = good_answer() | {"abstained": True}
    assert load.answer_problems(abstained, text) == ["abstained but cites sources"]
    assert load.answer_problems(abstained | {"citations": []}, text) == []
    assert "missing citations" in load.answer_problems({k: v for k, v in good_answer().items() if k != "citations"}, text)[0]


class FakeJob:
    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def result(self, timeout=None):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class FakeClient:
    """Answers every request with the given result, or raises the given exception."""

    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def submit(self, api_name, **kwargs):
        return FakeJob(self.outcome)


def test_bad_requests_count_as_expected_only_when_refused_with_their_message(load):
    from gradio_client.exceptions import AppError

    def outcome(server_does, expect="empty"):
        user = load.SimUser(0, "http://unused/", [], timeout=5)
        user.client = FakeClient(server_does)
        _, record = user.call("bad", expect=expect, question="", api_name="/ask")
        return record.outcome

    assert outcome(AppError("The question is empty.")) == "rejected"
    assert outcome(AppError("Something else broke.")) == "error"  # refused, but not for the reason it should be
    assert outcome(TimeoutError()) == "error"
    assert outcome({"answer": "…"}) == "error"  # a bad request that was accepted is a failure
    assert outcome(AppError("The question is empty."), expect="") == "error"  # a good request refused


def test_a_malformed_answer_is_an_error_not_a_crash(load):
    user = load.SimUser(0, "http://unused/", [], timeout=5)
    user.client = FakeClient({"question": "q", "standalone_question": "q", "answer": "Yes [1].", "abstained": False,
                              "citations": [{"n": 1}]})  # a citation without its article and offsets
    user.run_step(load.Step("ask", "Why?"), 0)
    [record] = user.records
    assert record.outcome == "error" and record.detail.startswith("malformed: KeyError")


def test_summary_counts_outcomes_and_takes_latency_from_successes(load):
    R = load.Record
    records = [R(0, "ask", "/ask", s, "ok") for s in (0.1, 0.2, 0.3, 0.4)]
    records += [R(1, "bad", "/ask", 9.0, "rejected", "AppError: empty"), R(1, "ask", "/ask", 8.0, "error", "boom")]
    s = load.summarize(records, seconds=2.0)
    assert (s["requests"], s["ok"], s["errors"], s["expected_rejections"]) == (6, 4, 1, 1)
    assert s["overall"]["p50_ms"] == 250.0 and s["overall"]["max_ms"] == 400.0
    assert s["requests_per_s"] == 3.0 and s["answers_per_s"] == 2.0
    assert s["error_messages"] == [{"message": "/ask (ask): boom", "count": 1}]


def test_five_users_get_well_formed_answers_and_no_errors(load, shipped_copy, tmp_path):
    # The same path as `python eval/load.py`: it starts the real app (real model) on a free port and drives it.
    out = tmp_path / "load.json"
    rc = load.main(["--users", "5", "--per-user", "5", "--duration", "0", "--corpus", str(shipped_copy), "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["errors"] == 0, report["error_messages"]
    assert rc == 0
    assert report["app_alive_after"] is True
    kinds = report["by_kind"]
    # Every kind of request in the mix was made; each answer's citations were checked against /article.
    assert {"ask", "follow_up", "ask_filtered", "retrieve", "bad", "article"} <= set(kinds)
    assert sum(kinds[k]["requests"] for k in kinds if k != "article") == 25
    assert kinds["bad"]["rejected"] == kinds["bad"]["requests"] > 0
    assert kinds["article"]["ok"] > 0
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        assert report["overall"][key] > 0
    memory = report["memory"]
    assert 0 < memory["rss_before_mib"] <= memory["rss_peak_mib"] and memory["lifetime_peak_mib"] > 0
    assert report["machine"]["cpus"] and len(report["load_average_before"]) == 3 and report["run"]["command"]
    text = out.with_suffix(".md").read_text()
    assert "| **all** | " in text and "**0 unexpected errors**" in text
