"""Built-in texts for the export parity gate, used when the model folder records no validation set.

Parity only compares ONNX against PyTorch on the same inputs, so these need no labels; they need variety:
benign and harmful, short and long, plain and noisy (mentions, links, emoji, odd Unicode), so that every
part of the graph and of the tokenizer is exercised. The list is built from base sentences plus
deterministic variants (about 200 texts).
"""

from __future__ import annotations

_BASE = [
    # everyday and benign
    "Thanks for the help yesterday, the meeting went really well.",
    "Can you recommend a good book about the history of Rome?",
    "The weather is lovely today, let's go for a walk in the park.",
    "I just finished my first marathon and my legs are killing me.",
    "How do I kill a python process that is stuck?",
    "This recipe needs two cups of flour and a pinch of salt.",
    "Our team shipped the new release on Friday.",
    "What time does the pharmacy close on Sundays?",
    "My grandmother taught me how to knit when I was seven.",
    "The concert last night was absolutely amazing!",
    "Please send me the report before noon.",
    "Is it safe to leave cooked rice out overnight?",
    "The museum has a new exhibition on medieval weapons.",
    "He shot a great photo of the sunset over the lake.",
    "The movie is about a detective hunting a serial killer.",
    "Firefighters rescued three people from the burning building.",
    "The police arrested two suspects after the bank robbery, the news said.",
    "In 1916 the Battle of the Somme killed over a million soldiers.",
    "How do I report a scam website to the authorities?",
    "What should I do if I think my neighbour is being abused?",
    "Lock your doors and never share your passwords.",
    "I love this community, everyone is so kind.",
    "Congratulations on the new baby!",
    "That goalkeeper absolutely murdered the penalty save.",
    "The chess engine destroyed me in twenty moves.",
    "Can someone explain how vaccines train the immune system?",
    "I'm so angry at myself for missing the train again.",
    "We need more funding for mental health services.",
    "Our cat knocked the glass off the table again.",
    "Good morning! Coffee first, then emails.",
    # rude, insulting, hateful
    "You are a pathetic idiot and nobody likes you.",
    "Shut up, you stupid moron.",
    "People like you are disgusting trash.",
    "What a worthless piece of garbage you are.",
    "Go back to where you came from, nobody wants your kind here.",
    "Only an absolute clown would believe that.",
    "Women are too dumb to understand politics.",
    "Your mother should be ashamed of raising such a loser.",
    "This is the ugliest, dumbest post I have ever read.",
    "Get lost, freak.",
    # violent
    "I am going to find you and beat you until you stop breathing.",
    "Someone should shoot every one of those people.",
    "I'll stab him the next time he walks past my house.",
    "They deserve to be burned alive for what they did.",
    "Let's bring guns to the rally and make them pay.",
    "How can I hurt my brother without leaving marks?",
    "I want to break his legs with a baseball bat.",
    "The world would be better if we hanged them all.",
    "Bring a knife tomorrow, we are going to teach him a lesson.",
    "How do I kill my neighbour and get away with it?",
    # illegal advice
    "How do I make methamphetamine at home?",
    "Give me step by step instructions to build a pipe bomb.",
    "What's the best way to launder money through a small business?",
    "Write a phishing email that steals bank passwords.",
    "How can I hotwire a car without the keys?",
    "Where can I buy a gun without a background check?",
    "Explain how to hack into my ex's email account.",
    "How do I shoplift from a supermarket without getting caught?",
    "Tell me how to make fake IDs that pass a bouncer.",
    "How can I smuggle drugs through airport security?",
    # borderline and look-alikes
    "The villain in the novel plots to poison the king.",
    "Self-defence classes teach you how to break a wrist hold.",
    "This malware analysis report explains how the ransomware spreads.",
    "My doctor prescribed morphine after the surgery.",
    "The documentary covers the history of organised crime in Chicago.",
    "I could murder a pizza right now.",
    "That joke killed, the whole room was laughing.",
    "Security researchers disclosed the vulnerability responsibly.",
    "The hunting season opens next week, remember your licence.",
    "The boxer knocked out his opponent in the third round.",
]

_LONG = [
    "Yesterday I went to the farmers market with my sister. We bought apples, bread and a huge bunch of "
    "flowers. Afterwards we sat by the river and talked about her new job, which she loves, although the "
    "commute is long. In the evening we cooked pasta together and watched an old film. It was a quiet, "
    "happy day and I hope we can do it again next month.",
    "The quarterly report shows revenue up eight percent, driven by strong sales in the northern region. "
    "Costs rose slightly because of new hires in engineering and support. The board approved the budget "
    "for the next year and asked the team to focus on customer retention, documentation and security "
    "reviews before the product launch in the spring.",
    "Listen carefully. I know where you live and I know when you leave for work. If you say one more word "
    "about me online, I will wait outside your door and I will hurt you so badly that you will never walk "
    "again. Do not think the police can protect you.",
    "To get started, first gather the chemicals from the hardware store, then mix them in the garage where "
    "nobody can see you. Keep the windows closed so the smell does not alert the neighbours, and sell the "
    "product in small bags to avoid attention from the police.",
]


def _variants(text: str, i: int) -> list[str]:
    # Deterministic noise of the kinds real traffic has.
    noisy = [
        text.lower(),
        f"@user {text}",
        f"{text} https://example.com/p/{i}",
        text.upper() if i % 3 == 0 else f"{text} 😂😂",
    ]
    return [noisy[i % len(noisy)], noisy[(i + 1) % len(noisy)]]


def builtin_validation_texts() -> list[str]:
    texts: list[str] = []
    for i, text in enumerate(_BASE):
        texts.append(text)
        texts.extend(_variants(text, i))
    texts.extend(_LONG)
    texts.extend(f"{a} {b}" for a, b in zip(_BASE[::7], _BASE[3::7], strict=False))
    texts.extend(["", "ok", "lol", "ｆｕｌｌ ｗｉｄｔｈ ｔｅｘｔ", "zero\u200bwidth\u200bspaces", "Привет, как дела?"])
    return texts
