"""What a question asks for (rag/questions.py): its answer type, the entity kind its wh-phrase names,
whether an entity is new to it, and the parts of a compound question."""

import pytest

from rag.questions import answer_type, entity_kind, has_new_entity, question_words, sub_questions


@pytest.mark.parametrize(
    "question, kind",
    [("How many jobs were cut?", "number"), ("When did the lab open?", "date"), ("In which year was it founded?", "year"), ("Who scored the goal?", "name"),
     ("Why did Amazon close the lab?", "reason"), ("What is the plan?", None),
     ("How much did Chelsea pay for him?", "money"), ("What fee will applicants pay?", "money"), ("How much did prices rise?", "number")],
)
def test_answer_type_cues(question, kind):
    assert answer_type(question) == kind


@pytest.mark.parametrize(
    "question, kind",
    [("In which Swedish town is the Saab plant?", "place"), ("Where did Hailey settle in 1969?", "place"),
     ("Which Blackburn player's challenge broke Robben's foot?", "person"), ("Who set up the Hit Factory?", "person"),
     ("Which technology firm built the network?", "org"), ("Which film was Davis working on?", "work"),
     # Only the question's own wh-phrase counts, not a "who"/"when" inside a later clause.
     ("In which Indian state is the film about a priest who falls for a girl set?", "place"),
     ("What was the starting price of the Mini when it went on sale?", "money"),
     ("How many AOL subscribers did it lose?", "number"), ("In what year did it open?", "year"),
     ("What is the plan?", None),
     # After "did", "what" is itself the object: the nouns that follow are the subject.
     ("What did the city zoo welcome?", None), ("What did the Bank of England do with rates?", None),
     # Before a verb, "what" is its subject: "What happened at the city zoo?" asks for no place.
     ("What happened at the city zoo?", None), ("What caused the team's bus to crash?", None),
     # "Who is <a name>?" asks what that person is: another person's name is no answer.
     ("Who is Wang Minjie?", None), ("Who is Tony Blair's successor?", "person"), ("Who was Mr Rubin?", None)],
)
def test_entity_kind_reads_the_questions_own_wh_phrase(question, kind):
    assert entity_kind(question) == kind


@pytest.mark.parametrize(
    "question, parts",
    [("How many jobs went at Fiat, and why did GM pay $2bn to end the deal?",
      ["How many jobs went at Fiat?", "why did GM pay $2bn to end the deal?"]),
     ("What stake does Fiat hold in Ferrari, and whom did Marchionne replace at Fiat Auto?",
      ["What stake does Fiat hold in Ferrari?", "whom did Marchionne replace at Fiat Auto?"]),
     ("In how many categories was Usher nominated; and in which city will the awards show be held?",
      ["In how many categories was Usher nominated?", "in which city will the awards show be held?"]),
     # A part too short to search alone keeps the rest of the question as context.
     ("The MP revealed a long-lost daughter: who is he, and how old is she?",
      ["The MP revealed a long-lost daughter: who is he?", "how old is she? The MP revealed a long-lost daughter: who is he"]),
     # A choice between options asks the same of each.
     ("Which carmaker made the larger 2004 profit: General Motors or Ford?",
      ["Which carmaker made the larger 2004 profit: General Motors?", "Which carmaker made the larger 2004 profit: Ford?"]),
     ("Who was older when he died: the ex-premier James Callaghan, or Sir Anthony Meyer?",
      ["Who was older when he died: the ex-premier James Callaghan?", "Who was older when he died: Sir Anthony Meyer?"]),
     ('Who said: "we will go or stay"?', ['Who said: "we will go or stay"?']),
     # "and" inside one question is not a second question.
     ("Did Smith and Jones meet in Paris?", ["Did Smith and Jones meet in Paris?"]),
     ("Which reported the bigger profit, Yahoo or Boeing?", ["Which reported the bigger profit, Yahoo or Boeing?"])],
)
def test_compound_questions_split_into_their_parts(question, parts):
    assert sub_questions(question) == parts


def test_an_entity_is_new_unless_the_question_names_it_word_for_word():
    # "US" is not named by "business" although it is a substring of it; "Intel" is named.
    assert has_new_entity("place", [("US", "GPE")], question_words("Where is the business based?"))
    assert not has_new_entity("org", [("Intel", "ORG")], question_words("What did Intel build?"))
    assert not has_new_entity("person", [("Intel", "ORG")], question_words("Who built it?")), "only the asked kind counts"
