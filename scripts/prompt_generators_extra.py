# ruff: noqa: E501  (hand-written material: one entry per line reads better than wrapped strings)
"""Generators for creative-writing, summarising, comparison and short factual-question prompts."""

from __future__ import annotations

import prompt_facts as facts
import prompt_passages as passages
import prompt_topics as topics
from prompt_picker import Picker, a_or_an, cap, lower_first, tidy

CREATIVE_TEMPLATES = [
    "Write a short poem about {subject}.",
    "Write {a_tone} poem about {subject}, no longer than {lines} lines.",
    "Write a haiku about {subject}.",
    "Write a short story about {char} who {event}.",
    "Write {a_tone} short story, under {words} words, about {char} who {event}.",
    "Write the opening paragraph of {a_genre} novel set {setting}.",
    "Write a limerick about {char}.",
    "Write a letter from {char} to a friend they haven't seen in years.",
    "Write a diary entry by {char} at the end of a very strange day.",
    "Describe {place} at night in one vivid paragraph that uses all five senses.",
    "Write a fable about {animals} that teaches a lesson about {lesson}.",
    "Write a short, {toast_tone} toast for {occasion}.",
    "Write a playful product description for {item}.",
    "Write a dialogue between {char} and {char2}, who meet {setting}.",
    "Write three six-word stories about {subject}.",
    "Write a short scene set {setting} in which {char} {event}.",
    "Write a children's bedtime story about {char}.",
    "Write a free-verse poem from the point of view of {char}.",
    "Write the lyrics for a chorus about {subject}.",
    "Write {a_tone} short story set {setting}, in no more than {words} words.",
]

COMPARE_TEMPLATES = [
    "What is the difference between {a} and {b}?",
    "Compare {a} and {b}, focusing on {aspect}.",
    "How do {a} and {b} differ? Please focus on {aspect}.",
    "Explain the key similarities and differences between {a} and {b}.",
    "People often confuse {a} and {b}. What actually sets them apart?",
    "Give me three ways {a} and {b} are similar and three ways they differ.",
    "Can you compare {a} and {b} in a short table, including {aspect}?",
    "How would you explain the difference between {a} and {b} to {aud}?",
    "{A} and {b}: what are the main differences?",
    "In a few sentences, contrast {a} with {b}.",
]
CHOICE_TEMPLATES = [
    "I'm trying to decide between {a} and {b}. How do they compare on {aspect}?",
    "Which is better for {use}: {a} or {b}? Explain the trade-offs.",
    "What are the pros and cons of {a} compared with {b}?",
    "{A} or {b}? Help me weigh them up for {use}.",
    "Should I choose {a} or {b} for {use}? Compare them briefly.",
    "For {use}, would you recommend {a} or {b}? Please compare {aspect} too.",
    "Help me compare {a} and {b} with {use} in mind.",
]
COMPARE_AUDIENCES = [
    "a beginner",
    "a teenager",
    "someone with no background in the subject",
    "a new colleague",
]

SUMMARY_TEMPLATES = [
    "Summarise the following passage in two sentences:\n\n{p}",
    "Give me a one-sentence summary of this {kind}.\n\n{p}",
    "Summarise the key points of the {kind} below as a short bulleted list.\n\n{p}",
    "Can you summarise this {kind} for me in plain language?\n\n{p}",
    "Read the text below and summarise it in under 50 words.\n\n{p}",
    "Here is {a_kind}. Summarise the main points for someone who hasn't read it.\n\n{p}",
    "{p}\n\nSummarise the text above in three bullet points.",
    "Please write a brief summary of the following {kind}:\n\n{p}",
    "I don't have time to read this {kind}. What are the main points?\n\n{p}",
    "Summarise this {kind} in one sentence, then list any dates or numbers it mentions.\n\n{p}",
    "Summarise the text below for a busy reader in no more than three sentences.\n\n{p}",
    "What is this {kind} mainly about? Give a short summary.\n\n{p}",
]

# relation -> (material, phrasings); {x} is the subject. Capitals and currencies share one pool of
# countries, so a country is held out for both questions or for neither.
RELATIONS: dict[str, tuple[list[str], list[str]]] = {
    "capital": (facts.COUNTRIES, ["What is the capital of {x}?", "What's the capital city of {x}?", "Which city is the capital of {x}?"]),
    "author": (facts.BOOKS, ["Who wrote {x}?", "Who is the author of {x}?", "Which writer wrote {x}?"]),
    "symbol": (facts.ELEMENTS, ["What is the chemical symbol for {x}?", "Which symbol stands for {x} on the periodic table?"]),
    "acronym": (facts.ACRONYMS, ["What does {x} stand for?", "What is {x} short for?", "What do the letters in {x} stand for?"]),
    "painter": (facts.PAINTINGS, ["Who painted {x}?", "Which artist painted {x}?"]),
    "year": (facts.EVENTS, ["In which year did {x}?", "What year did {x}?", "When did {x}?"]),
    "person": (facts.DISCOVERIES, ["Who {x}?", "Can you tell me who {x}?", "Name the person who {x}."]),
    "currency": (facts.COUNTRIES, ["What is the currency of {x}?", "Which currency is used in {x}?"]),
    "dish": (facts.DISHES, ["What is the main ingredient in {x}?", "What is {x} mainly made from?"]),
    "landmark": (facts.LANDMARKS, ["In which country is {x}?", "Which country would I visit to see {x}?"]),
    "units": ([f"{a}|{b}" for a, b in facts.UNIT_PAIRS], ["How many {a} are there in {b}?", "How many {a} are in {b}?"]),
    "misc": (facts.MISC_QUESTIONS, ["{x}"]),
}  # fmt: skip
# (lead-in, whether the question after it starts lower-case)
LEAD_INS = [
    ("", False), ("", False), ("", False), ("Quick question: ", True), ("For a pub quiz I'm writing: ", True),
    ("I should know this, but ", True), ("Settle a debate for me: ", True),
    ("My daughter asked me this and I wasn't sure. ", False), ("Just out of curiosity, ", True),
    ("I'm revising for a general knowledge quiz. ", False), ("Can you help with a quick fact? ", False),
]  # fmt: skip
FOLLOW_UPS = [
    "",
    "",
    "Just the answer, please.",
    "Please answer in one sentence.",
    "A one-line answer is fine.",
    "Could you add one interesting fact too?",
]


def creative_writing(p: Picker) -> str:
    tone = p.any(topics.TONES)
    genre = p.any(topics.GENRES)
    animals, lesson = p.pick("fables", topics.ANIMAL_LESSONS)
    char, char2 = p.rng.sample(p.part("characters", topics.CHARACTERS), 2)
    setting = p.pick("settings", topics.SETTINGS)
    text = p.template("creative", CREATIVE_TEMPLATES).format(
        subject=p.pick("poem_subjects", topics.POEM_SUBJECTS), tone=tone,
        a_tone=f"{a_or_an(tone)} {tone}", a_genre=f"{a_or_an(genre)} {genre}",
        lines=p.any(["eight", "twelve", "sixteen"]), words=p.any(["300", "400", "500"]),
        char=char, char2=char2, event=p.pick("events", topics.EVENTS),
        setting=setting, place=setting.split(" ", 1)[1], animals=animals, lesson=lesson,
        toast_tone=p.any(["warm", "funny", "heartfelt"]), occasion=p.pick("occasions", topics.OCCASIONS),
        item=p.pick("items", topics.ITEMS),
    )  # fmt: skip
    return tidy(text)


def summarising(p: Picker) -> str:
    if p.chance(0.12):
        passage, kind = p.pick("knowledge", passages.KNOWLEDGE_PASSAGES)[1], "passage"
    else:
        frame = p.any(passages.FRAMES)
        passage, kind = frame(p), passages.DOC_KINDS[frame.__name__]
    template = p.template("summary", SUMMARY_TEMPLATES)
    return template.format(p=passage, kind=kind, a_kind=f"{a_or_an(kind)} {kind}").strip()


def comparison(p: Picker) -> str:
    first, second, aspects, uses, choice = p.pick("pairs", topics.PAIRS)
    if choice and uses and p.chance(0.4):
        template = p.template("choice", CHOICE_TEMPLATES)
    else:
        template = p.template("compare", COMPARE_TEMPLATES)
    return template.format(
        a=first, b=second, A=cap(first), aspect=p.any(aspects), use=p.any(uses or [""]),
        aud=p.any(COMPARE_AUDIENCES),
    )  # fmt: skip


def factual_question(p: Picker) -> str:
    relation = p.any(list(RELATIONS))
    material, phrasings = RELATIONS[relation]
    pool = "countries" if material is facts.COUNTRIES else f"facts-{relation}"
    subject = p.pick(pool, material)
    phrasing = p.template(f"phrasing-{relation}", phrasings)
    if relation == "units":
        small, big = subject.split("|")
        question = phrasing.format(a=small, b=big)
    else:
        question = phrasing.format(x=subject)
    lead_in, lower = p.any(LEAD_INS)
    body = lower_first(question) if lower else question
    return tidy(f"{lead_in}{body} {p.any(FOLLOW_UPS)}")
