"""LLM answers: the model cites numbered sentences, the pipeline shows only verified ones as supported.

All but two tests drive the real pipeline with a scripted llama-index LLM. One talks to a tiny
OpenAI-compatible server on loopback; the ``llm``-marked one runs the packaged GGUF through
llama.cpp when the optional extra is installed and is skipped, saying why, when it is not.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import threading
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback

from rag.answer import ABSTAIN_TEXT, ExtractiveAnswerer
from rag.cli import render
from rag.config import Config
from rag.conversation import standalone
from rag.evaluation import overall_table, run
from rag.llm import LLMAnswerer, LLMUnavailable, MODEL_HINT, packaged_gguf
from rag.pipeline import Newsdesk
from rag.types import Answer, Filters, Hit
from rag.verify import SUPPORTED
from ui_render import answer_html
from tests.conftest import ROOT, FakeEmbedder, free_port, write_corpus

ARTICLES = {
    "amazon.md": "---\ntitle: Amazon closes Shanghai AI lab\nsource: Tech Wire\npublished: 2025-07-22\n---\n"
    "Amazon has shut down its artificial intelligence research lab in Shanghai. "
    "The lab operated under Amazon Web Services and worked on machine learning. "
    "A WeChat post by scientist Wang Minjie said the closure came due to strategic adjustment between China "
    "and the United States. The lab opened in 2018 and employed dozens of researchers.\n",
    "docks.md": "---\ntitle: Dock strike in Rotterdam\nsource: Port News\npublished: 2024-03-05\n---\n"
    "Dock workers in Rotterdam walked out on Tuesday over pay. Container ships queued offshore for three days. "
    "The union said talks with employers would resume next week.\n",
}
SHUT = "Amazon has shut down its artificial intelligence research lab in Shanghai."
AWS = "The lab operated under Amazon Web Services and worked on machine learning."


class ScriptedLLM(CustomLLM):
    """A llama-index LLM that replies from a script; a reply is a string, a function of the prompt, or an error.

    Streaming sends the reply in 3-character pieces, so citation markers arrive split.
    """

    script: list = Field(default_factory=list)
    prompts: list = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted")

    def _next(self, prompt: str) -> str:
        self.prompts.append(prompt)
        reply = self.script.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply(prompt) if callable(reply) else reply

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs) -> CompletionResponse:
        return CompletionResponse(text=self._next(prompt))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs):
        text = self._next(prompt)

        def pieces():
            for i in range(0, max(len(text), 1), 3):  # an empty reply still ends with one (empty) piece
                yield CompletionResponse(text=text[: i + 3], delta=text[i : i + 3])

        return pieces()


def mark(prompt: str, phrase: str) -> str:
    """The ``[n]`` under which the prompt shows the sentence containing ``phrase`` (after the worked example)."""
    m = re.search(r"^\[(\d+)\] .*" + re.escape(phrase), question_part(prompt), flags=re.M)
    assert m, f"{phrase!r} is not among the numbered sentences"
    return f"[{m.group(1)}]"


def question_part(prompt: str) -> str:
    """The prompt from the last set of numbered sentences on: the worked example comes before it."""
    return prompt[prompt.rindex("Numbered sentences from news articles"):]


@pytest.fixture
def corpus_config(tmp_path) -> Config:
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    return Config(corpus=corpus, index=tmp_path / "index", llm="llamacpp")


@pytest.fixture
def scripted(corpus_config):
    """A Newsdesk on the tiny corpus whose answerer is an ``LLMAnswerer`` over a ``ScriptedLLM``."""
    fake = ScriptedLLM()
    desk = Newsdesk(corpus_config, embedder=FakeEmbedder(), answerer=LLMAnswerer(corpus_config, llm=fake))
    desk.ingest()
    return desk, fake


def slices_article(desk: Newsdesk, answer: Answer) -> bool:
    return all(desk.article(c.article_id)["text"][c.start : c.end] == c.sentence for c in answer.citations)


def test_valid_citations_map_to_the_cited_sentences_with_offsets(scripted):
    desk, fake = scripted
    fake.script = [lambda p: f"Amazon has shut down its artificial intelligence research lab in Shanghai {mark(p, 'has shut down')}. "
                             f"The lab operated under Amazon Web Services. {mark(p, 'Web Services')}\nThe articles say:"]
    answer = desk.ask("Why did Amazon shut its Shanghai lab and what did it work under?")

    prompt = question_part(fake.prompts[0])
    assert "Question: Why did Amazon shut its Shanghai lab" in prompt
    assert f'Article "Amazon closes Shanghai AI lab" (Tech Wire, 2025-07-22):\n[1] {SHUT}\n[2] {AWS}' in prompt
    assert ABSTAIN_TEXT in prompt  # the model is told how to abstain
    assert not answer.abstained and answer.answered_by == "llm" and not answer.note
    assert [s.text for s in answer.sentences] == [SHUT, "The lab operated under Amazon Web Services."]
    assert [s.citations for s in answer.sentences] == [(1,), (2,)]
    assert all(s.supported and s.support >= SUPPORTED for s in answer.sentences)
    assert [(c.n, c.sentence, c.article_id) for c in answer.citations] == [(1, SHUT, "amazon.md"), (2, AWS, "amazon.md")]
    assert slices_article(desk, answer)
    assert answer.text == f"{SHUT} [1] The lab operated under Amazon Web Services. [2]"


def test_prompt_numbers_map_back_to_the_right_hits():
    """Sentences are shown grouped by article in reading order, so [n] is not the n-th hit."""
    hits = [Hit("docks.md", 1, 58, 103, "Container ships queued offshore for three days.", 0.9, title="Dock strike"),
            Hit("amazon.md", 1, 76, 151, AWS, 0.8, title="Amazon lab"),
            Hit("amazon.md", 0, 0, 75, SHUT, 0.7, title="Amazon lab"),
            Hit("docks.md", 0, 0, 57, "Dock workers in Rotterdam walked out on Tuesday over pay.", 0.6, title="Dock strike")]
    fake = ScriptedLLM(script=[lambda p: f"Workers struck {mark(p, 'walked out')}. The lab shut {mark(p, 'has shut')}{mark(p, 'Web Services')}."])
    draft = LLMAnswerer(Config(), llm=fake).answer("What happened?", hits)
    assert re.findall(r"^\[(\d)\] (\w+)", question_part(fake.prompts[0]), flags=re.M) == [("1", "Dock"), ("2", "Container"), ("3", "Amazon"), ("4", "The")]
    assert draft.sentences == [("Workers struck.", [3]), ("The lab shut.", [2, 1])]


def test_the_model_reads_only_the_best_llm_sentences_and_its_numbers_still_map_back():
    hits = [Hit("amazon.md", 0, 0, 75, SHUT, 0.9, title="Amazon lab"),
            Hit("docks.md", 0, 0, 57, "Dock workers in Rotterdam walked out on Tuesday over pay.", 0.8, title="Dock strike"),
            Hit("amazon.md", 1, 76, 151, AWS, 0.7, title="Amazon lab")]
    fake = ScriptedLLM(script=[lambda p: f"The lab shut {mark(p, 'has shut')}. Workers struck {mark(p, 'walked out')}."])
    draft = LLMAnswerer(Config(llm_sentences=2), llm=fake).answer("What happened?", hits)
    shown = question_part(fake.prompts[0])
    assert "walked out" in shown and AWS not in shown  # the third-best sentence is not read
    assert draft.sentences == [("The lab shut.", [0]), ("Workers struck.", [1])]
    assert Config.from_env({"NEWSDESK_LLM_SENTENCES": "5"}).llm_sentences == 5


def test_invalid_or_missing_citations_are_not_shown_as_supported(scripted):
    desk, fake = scripted
    fake.script = [lambda p: f"The lab operated under Amazon Web Services {mark(p, 'Web Services')}. "
                             "Wang Minjie said the closure came due to strategic adjustment [99]. "
                             "The lab employed dozens of researchers."]
    answer = desk.ask("Why did Amazon close its Shanghai lab?")

    good, invalid, uncited = answer.sentences
    assert good.supported and good.citations == (1,)
    for s in (invalid, uncited):
        assert not s.supported and s.citations == ()
    assert [c.sentence for c in answer.citations] == [AWS]  # nothing points at a sentence [99]
    assert "[99]" not in answer.text


def test_a_citation_that_does_not_back_the_claim_is_flagged(scripted):
    desk, fake = scripted
    fake.script = [lambda p: f"The lab operated under Amazon Web Services {mark(p, 'Web Services')}. "
                             f"Amazon moved the lab to Mars with ninety robot chefs {mark(p, 'has shut down')}."]
    answer = desk.ask("What happened to Amazon's Shanghai lab?")

    good, invented = answer.sentences
    assert good.supported
    assert not invented.supported and invented.support < SUPPORTED
    assert invented.support < good.support


def test_an_answer_nothing_backs_is_replaced_by_the_quoted_answer_and_says_so(scripted, corpus_config):
    """A model that fails to cite is no evidence the articles are silent: quote them instead, and say why."""
    _, fake = scripted
    # Ungated, so that the model is asked even where the engine itself declines (the cost question).
    config = corpus_config.with_(gate_llm=False)
    desk = Newsdesk(config, embedder=FakeEmbedder(), answerer=LLMAnswerer(config, llm=fake))
    quoting = Newsdesk(corpus_config.with_(llm="none"), embedder=FakeEmbedder())
    answers = {}
    for question in ("What happened to Amazon's Shanghai lab?", "How much did the Shanghai lab cost to run?"):
        fake.script = [lambda p: f"Amazon moved the lab to Mars with ninety robot chefs {mark(p, 'has shut down')}."]
        answer, quoted = desk.ask(question), quoting.ask(question)
        assert "Mars" not in answer.text and answer.answered_by == quoted.answered_by == "extractive"
        assert "no answer backed by the sentences it cited" in answer.note and not quoted.note
        assert (answer.text, answer.citations, answer.abstained) == (quoted.text, quoted.citations, quoted.abstained)
        assert ("quotes the articles instead" in answer.note) == (not answer.abstained)
        answers[question] = answer
    shut, cost = answers.values()
    assert not shut.abstained and slices_article(desk, shut)  # the articles say what happened...
    assert cost.abstained and cost.text == ABSTAIN_TEXT  # ...but not what it cost
    for answer in (shut, cost):  # the chat, the CLI and the API all say why
        assert escape(answer.note) in answer_html(answer, 0) and answer.note in render(answer)
        assert answer.to_dict()["note"] == answer.note and answer.to_dict()["answered_by"] == "extractive"


def test_the_model_is_not_asked_where_the_engine_finds_no_answer(scripted, corpus_config):
    """The abstention rule tuned on the dev sets decides whether the articles answer; a model would answer anyway."""
    desk, fake = scripted
    fake.script = [lambda p: f"The lab cost $40m a year to run {mark(p, 'has shut down')}."]
    answer = desk.ask("How much did the Shanghai lab cost to run?")
    assert not fake.prompts and fake.script  # never asked
    assert answer.abstained and answer.text == ABSTAIN_TEXT and not answer.citations and answer.related
    assert answer.answered_by == "extractive"
    *pieces, streamed = desk.ask_stream("How much did the Shanghai lab cost to run?")
    assert not pieces and streamed.abstained and not fake.prompts


def test_a_backed_answer_that_gives_nothing_asked_for_is_replaced_by_the_quoted_one(scripted, corpus_config):
    """"Who ...?" answered without a name is backed by its citation and answers nothing."""
    desk, fake = scripted
    question = "Who said in a WeChat post why the Shanghai lab closed?"
    quoted = Newsdesk(corpus_config.with_(llm="none"), embedder=FakeEmbedder()).ask(question)
    assert "Wang Minjie" in quoted.text
    fake.script = [lambda p: f"A scientist said in a WeChat post that the closure came due to strategic adjustment {mark(p, 'WeChat')}."]
    answer = desk.ask(question)
    assert answer.answered_by == "extractive" and "does not give what the question asks for" in answer.note
    assert (answer.text, answer.citations) == (quoted.text, quoted.citations)
    fake.script = [lambda p: f"Scientist Wang Minjie said the closure came due to strategic adjustment {mark(p, 'WeChat')}."]
    named = desk.ask(question)
    assert named.answered_by == "llm" and not named.note and named.sentences[0].supported


def test_the_eval_reports_how_many_answers_the_model_wrote(scripted):
    desk, fake = scripted
    questions = [{"id": f"q{i}", "type": "single", "question": "Why did Amazon shut its Shanghai lab?", "answer": "shut down",
                  "aliases": [], "evidence": [{"doc": "amazon.md", "sentence": SHUT}]} for i in range(4)]
    backed = lambda p: f"Amazon has shut down its artificial intelligence research lab in Shanghai {mark(p, 'has shut down')}."
    fake.script = [backed, "It moved to Mars.", backed, "It moved to Mars."]
    predictions, metrics = run(desk, questions)
    assert [p["answer"]["answered_by"] for p in predictions] == ["llm", "extractive", "llm", "extractive"]
    assert metrics["newsdesk"]["overall"]["by_llm"] == 0.5
    assert "answers written by the language model" in overall_table(metrics)
    desk.answerer = ExtractiveAnswerer(desk.config)  # no model: the row is left out
    assert run(desk, questions[:1])[1]["newsdesk"]["overall"]["by_llm"] is None


def test_the_abstain_reply_abstains_with_related_sentences(scripted):
    desk, fake = scripted
    fake.script = ["The articles don’t say."]
    answer = desk.ask("How much did the Shanghai lab cost to run?")
    assert answer.abstained and answer.text == ABSTAIN_TEXT and not answer.citations
    assert answer.related and answer.related[0].article_id == "amazon.md"


def test_no_retrieved_sentences_means_no_llm_call(scripted):
    desk, fake = scripted
    answer = desk.ask("Why did Amazon close its Shanghai lab?", filters=Filters(sources=("Nobody",)))
    assert answer.abstained and fake.prompts == []  # the model never answers from its own memory


def test_streaming_yields_text_then_the_same_answer_as_ask(scripted):
    desk, fake = scripted
    reply = lambda p: f"Amazon has shut down its artificial intelligence research lab in Shanghai {mark(p, 'has shut down')}. " \
                      f"The lab operated under Amazon Web Services {mark(p, 'Web Services')}."
    fake.script = [reply, reply]
    items = list(desk.ask_stream("Why did Amazon shut its Shanghai lab?"))

    *pieces, answer = items
    assert isinstance(answer, Answer) and len(pieces) > 5 and all(isinstance(p, str) for p in pieces)
    streamed = "".join(pieces)
    assert "[" not in streamed  # the prompt's numbers are hidden; the answer carries the final ones
    assert streamed == " ".join(s.text for s in answer.sentences)
    assert answer.text == f"{SHUT} [1] The lab operated under Amazon Web Services. [2]"
    asked = desk.ask("Why did Amazon shut its Shanghai lab?")
    assert (asked.sentences, asked.citations) == (answer.sentences, answer.citations)


def test_a_looping_reply_is_cut_short_and_shown_once(scripted):
    desk, fake = scripted
    loop = lambda p: f"The lab opened in 2018 {mark(p, 'opened in 2018')}. " * 40
    fake.script = [loop]
    *pieces, answer = desk.ask_stream("When did the Shanghai lab open?")
    assert [s.text for s in answer.sentences] == ["The lab opened in 2018."] and answer.sentences[0].supported
    assert len("".join(pieces)) < 200  # generation stopped once the model repeated itself


def test_follow_ups_are_rewritten_by_the_llm_and_the_rewrite_is_shown(scripted):
    desk, fake = scripted
    history = [("Why did Amazon close its Shanghai lab?", f"{SHUT} [1]")]
    fake.script = ["Standalone question: When did Amazon open its Shanghai lab?\nAnything after the first line is ignored.",
                   lambda p: f"The lab opened in 2018 {mark(p, 'opened in 2018')}."]
    answer = desk.ask("When did it open?", history=history)

    assert answer.standalone_question == "When did Amazon open its Shanghai lab?"
    assert "Why did Amazon close its Shanghai lab?" in fake.prompts[0] and "When did it open?" in fake.prompts[0]
    assert "Question: When did Amazon open its Shanghai lab?" in fake.prompts[1]  # retrieval and answer use it
    assert answer.sentences[0].supported and answer.citations[0].sentence.startswith("The lab opened in 2018")


@pytest.mark.parametrize("failure", ["", "  \n", ConnectionError("server went away")])
def test_rewrite_falls_back_to_the_rule_rewrite_when_the_llm_gives_nothing(scripted, failure):
    desk, fake = scripted
    history = [("Why did Amazon close its Shanghai lab?", SHUT)]
    fake.script = [failure, ABSTAIN_TEXT]
    answer = desk.ask("When did it open?", history=history)
    rule = standalone("When did it open?", history)
    assert rule != "When did it open?"  # the rule rewrite adds the topic
    assert answer.standalone_question == rule


def test_a_missing_integration_or_model_is_a_clear_error_at_start_up(tmp_path):
    missing = tmp_path / "missing.gguf"
    installed = importlib.util.find_spec("llama_cpp") is not None
    expected = "GGUF model not found" if installed else re.escape("pip install -e .[llm]")
    with pytest.raises(LLMUnavailable, match=expected):
        Newsdesk(Config(llm="llamacpp", llm_model=str(missing), index=tmp_path / "index"), embedder=FakeEmbedder())
    with pytest.raises(LLMUnavailable, match="needs a model name"):
        Newsdesk(Config(llm="openai", llm_url="http://127.0.0.1:9/v1", index=tmp_path / "index"), embedder=FakeEmbedder())
    with pytest.raises(ValueError, match="choose none, llamacpp or openai"):
        LLMAnswerer(Config(llm="gpt"))


def test_the_default_path_imports_no_llm_integration():
    code = (
        "import sys; from rag.config import Config; from rag.llm import LLMAnswerer; "
        "LLMAnswerer(Config(llm='openai', llm_model='m', llm_url='http://127.0.0.1:9/v1')); "
        "print(sorted(m for m in ('llama_cpp', 'llama_index.llms.llama_cpp', 'llama_index.llms.openai_like', 'openai') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("reply, n, expected", [
    ("The lab closed [1]. It had 40 staff. [2][9]", 2, [("The lab closed.", [0]), ("It had 40 staff.", [1])]),
    ("- Staff left [1, 3-4].\n- Talks resume [2]\n[5]", 5, [("Staff left.", [0, 2, 3]), ("Talks resume", [1, 4])]),
    ("Answer: It opened in 2018 [0][3]. The articles don't say why.", 3, [("It opened in 2018.", [2]), ("The articles don't say why.", [])]),
])
def test_replies_become_sentences_citing_hit_indices(reply, n, expected):
    from rag.llm import ReplyParser

    draft = ReplyParser().parse(reply, n)
    assert not draft.abstained and draft.sentences == expected


@pytest.mark.parametrize("reply", ["The articles don't say.", "the articles don’t say", '"The articles do not say." [1]'])
def test_abstain_replies_are_recognised(reply):
    from rag.llm import ReplyParser

    assert ReplyParser().parse(reply, 3).abstained


@pytest.mark.parametrize("reply", ["", "[1]", "The articles say:"])
def test_an_empty_reply_is_no_answer_and_no_abstention(scripted, reply):
    """A model that wrote nothing has not found the articles silent: the quoted answer is given instead."""
    from rag.llm import ReplyParser

    draft = ReplyParser().parse(reply, 3)
    assert not draft.abstained and not draft.sentences
    desk, fake = scripted
    fake.script = [reply]
    answer = desk.ask("What happened to Amazon's Shanghai lab?")
    assert not answer.abstained and answer.answered_by == "extractive" and "no answer backed" in answer.note


# --- an OpenAI-compatible server on loopback -----------------------------------------------


class FakeOpenAI(BaseHTTPRequestHandler):
    """Serves /v1/chat/completions as server-sent events, answering from the numbered sentences it is sent."""

    requests: list = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        prompt = body["messages"][-1]["content"]
        text = f"The lab operated under Amazon Web Services {mark(prompt, 'Web Services')}."
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(0, len(text), 5):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "delta": {"content": text[i : i + 5]}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def openai_server():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeOpenAI)
    FakeOpenAI.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_an_openai_compatible_server_answers_and_streams(tmp_path, openai_server):
    pytest.importorskip("llama_index.llms.openai_like", reason="llama-index-llms-openai-like not installed: pip install -e .")
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    config = Config(corpus=corpus, index=tmp_path / "index", llm="openai", llm_model="tiny-news", llm_url=openai_server,
                    llm_max_tokens=77)
    desk = Newsdesk(config, embedder=FakeEmbedder())
    desk.ingest()

    answer = desk.ask("What did Amazon's Shanghai lab operate under?")
    *pieces, streamed = desk.ask_stream("What did Amazon's Shanghai lab operate under?")

    for a in (answer, streamed):
        assert [(s.text, s.supported, s.citations) for s in a.sentences] == [("The lab operated under Amazon Web Services.", True, (1,))]
        assert a.citations[0].sentence == AWS and slices_article(desk, a)
    assert "".join(pieces) == "The lab operated under Amazon Web Services."
    sent = FakeOpenAI.requests
    assert [(r["path"], r["stream"]) for r in sent] == [("/v1/chat/completions", True)] * 2
    assert sent[0]["model"] == "tiny-news" and sent[0]["max_tokens"] == 77 and sent[0]["auth"] == "Bearer none"
    assert sent[0]["messages"][0]["role"] == "system"


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    pytest.importorskip("llama_index.llms.openai_like", reason="llama-index-llms-openai-like not installed: pip install -e .")
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    answerer = LLMAnswerer(Config(llm="openai", llm_model="m", llm_url=url))

    with pytest.raises(LLMUnavailable, match=re.escape(url)):
        answerer.answer("Why?", [Hit("a.md", 0, 0, 5, "Text.", 1.0)])


# --- the local model, when installed -------------------------------------------------------


def local_model_missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python not installed: pip install -e .[llm]"
    if importlib.util.find_spec("llama_index.llms.llama_cpp") is None:
        return "llama-index-llms-llama-cpp not installed: pip install -e .[llm]"
    if packaged_gguf() is None:
        return f"no GGUF model: {MODEL_HINT}"
    return None


@pytest.mark.llm
@pytest.mark.skipif(local_model_missing() is not None, reason=local_model_missing() or "")
def test_the_local_gguf_model_answers_with_verified_citations(shipped_copy, tmp_path, real_embedder):
    config = Config(corpus=shipped_copy, index=tmp_path / "index", llm="llamacpp")
    desk = Newsdesk(config, embedder=real_embedder)
    desk.ingest()
    *pieces, answer = desk.ask_stream("Why did Amazon close its Shanghai lab?")
    assert isinstance(answer, Answer) and all(isinstance(p, str) for p in pieces)
    assert answer.answered_by == "llm" or "no answer backed" in answer.note  # else the articles were quoted instead
    if answer.abstained:
        assert answer.text == ABSTAIN_TEXT and not answer.citations
        return
    numbers = {c.n: c for c in answer.citations}
    shown = [s for s in answer.sentences if s.supported]
    assert shown
    for s in shown:
        assert s.citations and s.support >= SUPPORTED
        for n in s.citations:
            c = numbers[n]
            assert desk.article(c.article_id)["text"][c.start : c.end] == c.sentence
