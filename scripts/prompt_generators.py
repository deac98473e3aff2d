# ruff: noqa: E501  (hand-written material: one entry per line reads better than wrapped strings)
"""Generators for explanation, how-to and advice prompts: a phrasing template filled with material."""

from __future__ import annotations

import prompt_material as mat
from prompt_picker import Picker, tidy

EXPLAIN_TEMPLATES = [
    "Explain {c} to {aud}.",
    "Can you explain {c} in simple terms? {fmt}",
    "What {is} {c}, and {why_q}?",
    "I've never really understood {c}. Could you explain {it} {manner}?",
    "How would you explain {c} to {aud}? {fmt}",
    "Give me a clear explanation of {c}, with one concrete example.",
    "What's the basic idea behind {c}? {fmt}",
    "Help me understand {c}. I'm {state}.",
    "Explain the main idea of {c} using an analogy.",
    "In one short paragraph, explain {c} to {aud}.",
    "Every explanation of {c} I find online confuses me. Could you explain {it} more simply?",
    "What {is} {c}? Please explain {it} without jargon.",
    "Could you explain {c} and clear up one common misconception about {it}?",
    "Write a short explanation of {c} that I could read aloud to {aud}.",
    "I'm learning about {dom}. Can you explain {c} and {why}?",
    "Explain {c} as a patient teacher would explain {it} to {aud}.",
    "Why does it matter to understand {c}? Give me a short explanation suited to {aud}.",
    "Please explain {c} in three or four sentences.",
    "What should {aud} know about {c}? Keep the explanation friendly and brief.",
    "Describe {c} in everyday language, then give one example from real life.",
    "Tell me about {c} as if I were {aud}.",
    "I'd like a beginner's explanation of {c}. {fmt}",
    "Can you explain what people mean by {c}? {fmt}",
    "Summarise the key ideas behind {c} in plain language for {aud}.",
]
EXPLAIN_FORMATS = [
    "Keep it under 150 words.",
    "A short example would help.",
    "Bullet points are fine.",
    "Two or three short paragraphs is plenty.",
    "Please avoid technical jargon.",
    "",
]
MANNERS = [
    "in plain English",
    "as simply as possible",
    "with an everyday analogy",
    "in a few short sentences",
]
LEARNER_STATES = [
    "new to this topic",
    "revising for an exam next week",
    "a visual thinker, so an analogy would help",
    "coming to this with no background at all",
    "trying to help my daughter with her homework",
]

HOWTO_TEMPLATES = [
    "How do I {t}?",
    "What's the best way to {t}? {fmt}",
    "Give me step-by-step instructions to {t}.",
    "I'm a complete beginner. How can I {t}?",
    "Can you walk me through how to {t}? {fmt}",
    "What do I need to {t}, and what are the steps?",
    "Explain how to {t}, including the mistakes beginners usually make.",
    "I'd like to {t} but don't know where to start. Can you help?",
    "Write a short checklist for how to {t}.",
    "Teach me how to {t} in {n} simple steps.",
    "Is there an easy way to {t}? I'd like practical tips.",
    "My last attempt to {t} went badly. How do I do it properly?",
    "What are the steps to {t} if I've never done it before?",
    "Could you give me a beginner-friendly guide on how to {t}? {fmt}",
    "What's a simple, reliable method to {t}?",
    "I need to {t} for the first time this week. What should I do, step by step?",
    "Please write clear instructions for someone who wants to {t}.",
    "What tools or materials do I need to {t}, and how do I go about it?",
    "A friend asked me how to {t} and I didn't know what to say. How would you explain it?",
    "Could you list the main steps to {t}, with a tip for each?",
]
HOWTO_FORMATS = [
    "Please use a numbered list.",
    "Keep it brief.",
    "Mention anything I should be careful about.",
    "Include roughly how long each step takes.",
    "",
]

ADVICE_TEMPLATES = [
    "I'm {p} and I want to {g}. {k} {q}",
    "What advice would you give to {p} hoping to {g}?",
    "As {p}, how can I {g}? {k}",
    "I'd like to {g}. {k} For context, I'm {p}. {q}",
    "Any tips for {p} trying to {g}?",
    "I'm {p}. What realistic steps could help me {g}? {k}",
    "How should {p} go about trying to {g}?",
    "My goal this year is to {g}. Some background: I'm {p}. {q}",
    "I keep meaning to {g} but never manage it. I'm {p}. {k} {q}",
    "What would you tell {p} struggling to {g}?",
    "Could you help me make a realistic plan to {g}? I'm {p}. {k}",
    "If you were {p} and wanted to {g}, what would you do first?",
    "I'm {p}. Is it realistic for me to {g}, and if so, how? {k}",
]
QUESTIONS = {
    "habit": ["What would you suggest?", "Where should I start?", "How can I make it stick?", "What should I focus on first?", "Any advice?"],
    "decision": ["What would you suggest?", "Where should I start?", "What should I consider first?", "What practical steps would you recommend?", "Any advice?"],
}  # fmt: skip
SITUATION_FRAMES = [
    "{s}",
    "{s} Please be honest and practical.",
    "I'd appreciate some advice. {s}",
    "{s} I'd like a few concrete suggestions.",
]


def explanation(p: Picker) -> str:
    concept, verb, domain = p.pick("concepts", mat.CONCEPTS)
    plural, past = verb in ("are", "were"), verb in ("was", "were")
    pronoun = "them" if plural else "it"
    subject = "they" if plural else "it"
    why_q = f"why {'did' if past else ('do' if plural else 'does')} {subject} matter"
    why = f"why {subject} " + ("mattered" if past else ("matter" if plural else "matters"))
    return tidy(
        p.template("explain", EXPLAIN_TEMPLATES).format(
            c=concept, aud=p.any(mat.AUDIENCES), fmt=p.any(EXPLAIN_FORMATS), manner=p.any(MANNERS),
            state=p.any(LEARNER_STATES), dom=mat.DOMAIN_NAMES[domain], it=pronoun,
            why=why, why_q=why_q, **{"is": verb},
        )
    )  # fmt: skip


def how_to(p: Picker) -> str:
    task, _domain = p.pick("tasks", mat.TASKS)
    template = p.template("howto", HOWTO_TEMPLATES)
    number = p.any(["five", "six", "seven"])
    return tidy(template.format(t=task, fmt=p.any(HOWTO_FORMATS), n=number))


def advice(p: Picker) -> str:
    if p.chance(0.3):
        situation = p.pick("situations", mat.SITUATIONS)
        return p.any(SITUATION_FRAMES).format(s=situation)
    goal, kind, requires = p.pick("goals", mat.GOALS)
    personas = [
        who for who, status in p.part("personas", mat.PERSONAS) if requires in ("any", status)
    ]
    persona = p.any(personas)
    template = p.template("advice", ADVICE_TEMPLATES)
    if template.startswith("If you were"):
        poss = "your"
    elif template.startswith(("What advice", "Any tips", "How should", "What would you tell")):
        poss = "their"
    else:
        poss = "my"
    text = template.format(
        p=persona, g=goal.format(poss=poss),
        k=p.any(mat.CONSTRAINTS[kind]), q=p.any(QUESTIONS[kind]),
    )  # fmt: skip
    return tidy(text)
