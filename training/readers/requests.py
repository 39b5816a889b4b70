"""Readers for harmful-request sets (prompts asking for harmful help), one per source.

Harmful-request sets: toxicity stays unknown (asking for hate is not itself hateful language, and a request
may or may not insult someone); only clearly benign categories get toxicity 0. Most sets are read by
category through a mapping table (category -> labels) checked on the real rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from harmscan.training.readers.base import (
    BENIGN,
    UNKNOWN,
    Example,
    Label,
    Reader,
    check,
    choice,
    label_dict,
    lines,
    read_json,
    register,
    table,
)


def _category_reader(
    name: str, file: str, text_col: str, cat_col: str, categories: Mapping[str, tuple[Label, Label, Label]],
    extra: Sequence[str] = (),
) -> Reader:
    """A reader of one table with a category column, labelled through `categories` (category -> labels)."""

    def read(folder: Path) -> Iterator[Example]:
        path = folder / file
        for line, row in table(path, (text_col, cat_col, *extra)):
            cat = choice(row[cat_col], categories, path, line, cat_col)
            meta = {"category": cat, **{c: row[c] for c in extra}}
            yield Example(row[text_col], label_dict(*categories[cat]), name, meta)

    read.__name__ = f"read_{name}"
    return read


# hazard -> (toxicity, violence, illegal_advice)
AILUMINATE_HAZARDS: dict[str, tuple[Label, Label, Label]] = {
    "vcr": (None, 1, 1),  # violent crimes
    "iwp": (None, 1, 1),  # indiscriminate weapons (CBRNE)
    "ncr": (None, 0, 1),  # non-violent crimes
    "src": (None, None, 1),  # sex-related crimes
    "cse": (None, None, 1),  # child sexual exploitation
    "hte": (None, None, 0),  # hate: asks about or for hate; toxicity unknown (see the module docstring)
    "ssh": (None, None, 0),  # suicide and self-harm
    "dfm": (None, 0, 0),  # defamation
    "prv": (None, 0, None),  # privacy: some are stalking or hacking
    "ipv": (None, 0, None),  # intellectual property: some are piracy
    "sxc_prn": (None, 0, 0),  # sexual content
    "spc_fin": (0, 0, 0),  # specialised advice: benign hard negatives
    "spc_hlt": (0, 0, 0),
    "spc_ele": (0, 0, 0),
    "spc_lgl": (0, 0, 0),
}
read_ailuminate = register("ailuminate_demo")(_category_reader(
    "ailuminate_demo", "airr_official_1.0_demo_en_us_prompt_set_release.csv", "prompt_text", "hazard",
    AILUMINATE_HAZARDS, extra=("persona",),
))

# (category, subcategory) -> (violence, illegal_advice); checked on all 10 questions of each subcategory
CATQA: dict[tuple[str, str], tuple[Label, Label]] = {
    ("Illegal Activity", "Drug"): (0, 1),
    ("Illegal Activity", "Weapon"): (None, 1),  # stealing/trafficking guns mixed with making explosives
    ("Illegal Activity", "Human Trafficking"): (None, 1),
    ("Illegal Activity", "Cybercrime"): (0, 1),
    ("Illegal Activity", "Theft and Robbery"): (0, 1),
    ("Child Abuse", "Content Sexual exploitation"): (None, 1),
    ("Child Abuse", "Physical abuse"): (1, 1),
    ("Child Abuse", "Emotional and psychological abuse"): (0, None),
    ("Child Abuse", "Neglect"): (0, None),
    ("Child Abuse", "Online predation"): (None, 1),
    # these five are fake news, vandalism and harassment campaigns, not physical violence (the
    # "Gender-based violence" and "Terrorism" rows are about smearing groups)
    ("Hate/Harass/Violence", "Racial or ethnic hate"): (0, None),
    ("Hate/Harass/Violence", "Religious intolerance"): (0, None),
    ("Hate/Harass/Violence", "Gender-based violence"): (0, None),
    ("Hate/Harass/Violence", "Cyberbullying"): (0, None),
    ("Hate/Harass/Violence", "Terrorism and extremism"): (0, None),
    ("Malware Viruses", "Malicious software designed to spread and damage computers"): (0, 1),
    ("Malware Viruses", "Trojans"): (0, 1),
    ("Malware Viruses", "Spyware"): (0, 1),
    ("Malware Viruses", "Ransomware"): (0, 1),
    ("Malware Viruses", "Adware"): (0, 1),
    ("Physical Harm", "Self-harm"): (None, 0),
    ("Physical Harm", "Assault and battery"): (1, 1),
    ("Physical Harm", "Hazardous material handling"): (None, None),
    ("Physical Harm", "Unsafe practices"): (None, None),  # parkour, stunts, "exploit Wi-Fi"
    ("Physical Harm", "Weapon making"): (1, None),  # nerve gas, IEDs; some merely exceed legal limits
    ("Economic Harm", "Financial fraud"): (0, 1),
    ("Economic Harm", "Intellectual property theft"): (0, 1),
    ("Economic Harm", "Market manipulation"): (0, 1),
    ("Economic Harm", "Employment scams"): (0, 1),
    ("Economic Harm", "Investment scams"): (0, 1),
    ("Fraud/Deception", "Identity theft"): (0, 1),
    ("Fraud/Deception", "Phishing"): (0, 1),
    ("Fraud/Deception", "False advertising"): (0, None),  # greenwashing, fake reviews: not all crimes
    ("Fraud/Deception", "Scamming"): (0, 1),
    ("Fraud/Deception", "Counterfeiting"): (0, 1),
    ("Adult Content", "Pornography"): (None, None),
    ("Adult Content", "Erotic text"): (None, None),
    ("Adult Content", "Nude imagery"): (None, None),
    ("Adult Content", "Sexually explicit dialogue"): (None, None),
    ("Adult Content", "Adult-themed humor"): (None, None),  # actually date-rape drugs and coercion
    ("Political Campaigning", "Election advertising"): (0, None),
    ("Political Campaigning", "Political misinformation"): (0, None),
    ("Political Campaigning", "Lobbying"): (0, None),
    ("Political Campaigning", "Political activism"): (0, None),
    ("Political Campaigning", "Partisan commentary"): (0, None),
    ("Privacy Violation Activity", "Data theft"): (0, 1),
    ("Privacy Violation Activity", "Surveillance"): (0, None),
    ("Privacy Violation Activity", "Doxxing"): (0, None),
    ("Privacy Violation Activity", "Deepfake creation"): (0, None),
    ("Privacy Violation Activity", "Tracking and location monitoring"): (0, None),
    # insider trading and money laundering next to legal tax loopholes
    ("Tailored Financial Advice", "Personal investment advice"): (0, None),
    ("Tailored Financial Advice", "Retirement planning"): (0, None),
    ("Tailored Financial Advice", "Tax planning"): (0, None),
    ("Tailored Financial Advice", "Real estate investment"): (0, None),
    ("Tailored Financial Advice", "Debt management"): (0, None),
}


@register("catqa")
def read_catqa(folder: Path) -> Iterator[Example]:
    path = folder / "catqa_english.json"
    data = read_json(path)
    check(isinstance(data, dict), path, 1, "expected an object of categories")
    for category, subs in data.items():
        check(isinstance(subs, dict), path, None, f"category {category!r} is not an object")
        for sub, questions in subs.items():
            sub = sub.rstrip(":").strip()  # "Drug:" in the file
            check((category, sub) in CATQA, path, None, f"unmapped subcategory {category!r} / {sub!r}")
            check(isinstance(questions, list), path, None, f"{category!r} / {sub!r} is not a list")
            vio, ill = CATQA[(category, sub)]
            for q in questions:
                meta = {"category": category, "subcategory": sub}
                yield Example(str(q), label_dict(None, vio, ill), "catqa", meta)


# category -> (toxicity, violence, illegal_advice)
STRONGREJECT: dict[str, tuple[Label, Label, Label]] = {
    "Violence": (None, 1, None),  # includes self-harm and disease-spreading requests: crime unknown
    "Non-violent crimes": (None, 0, 1),
    "Illegal goods and services": (None, None, 1),  # bombs and guns next to drugs
    "Disinformation and deception": (None, None, None),  # phishing and terrorism posts next to hoaxes
    "Hate, harassment and discrimination": (None, None, None),
    "Sexual content": (None, None, None),
}


@register("strongreject_maliciousinstruct")
def read_strongreject(folder: Path) -> Iterator[Example]:
    yield from _category_reader(
        "strongreject_maliciousinstruct", "strongreject_dataset.csv", "forbidden_prompt", "category",
        STRONGREJECT, extra=("source",),
    )(folder)
    path = folder / "malicious_instruct.txt"
    for line in lines(path):
        if line.strip():  # MaliciousInstruct has no categories: harmful, but no head can be told
            meta = {"category": "MaliciousInstruct"}
            yield Example(line, dict(UNKNOWN), "strongreject_maliciousinstruct", meta)


JAILBREAKBENCH: dict[str, tuple[Label, Label, Label]] = {
    "Malware/Hacking": (None, 0, 1),
    "Fraud/Deception": (None, 0, 1),
    "Privacy": (None, 0, 1),  # identity theft, phishing, card cloning, blackmail
    "Government decision-making": (None, None, 1),  # forging documents, tampering with voting machines
    "Physical harm": (None, 1, None),
    "Economic harm": (None, 0, None),  # gambling advice next to extortion
    "Harassment/Discrimination": (None, None, 0),
    "Disinformation": (None, 0, None),
    "Sexual/Adult content": (None, None, None),
    "Expert advice": (None, 0, None),
}
read_jailbreakbench = register("jailbreakbench")(_category_reader(
    "jailbreakbench", "jailbreakbench.csv", "Goal", "Category", JAILBREAKBENCH, extra=("Behavior",)
))


@register("advbench")
def read_advbench(folder: Path) -> Iterator[Example]:
    for _, row in table(folder / "advbench.csv", ("goal",)):
        # harmful behaviours of every kind (hacking, bombs, self-harm, misinformation), uncategorised
        yield Example(row["goal"], dict(UNKNOWN), "advbench")


DNA_ILLEGAL = "Assisting illegal activities"
# types_of_harm -> (violence, illegal_advice) for everything but DNA_ILLEGAL
DO_NOT_ANSWER: dict[str, tuple[Label, Label]] = {
    "Social stereotypes and unfair discrimination": (0, 0),
    "Toxic language (hate speech)": (0, 0),
    "Adult Content": (0, 0),
    "Disseminating false or misleading information": (0, 0),
    "Causing material harm by disseminating misinformation e.g. in medicine or law": (0, 0),
    "Reducing the cost of disinformation campaigns": (0, 0),
    "Treat Chatbot as a Human": (0, 0),
    "Mental Health or Overreliance Crisis": (None, 0),  # includes self-harm questions
    # lock picking, drunk driving, forging documents, risky pranks
    "Nudging or advising users to perform unethical or unsafe actions": (None, None),
    "Risks from leaking or inferring sensitive information (organization/gov)": (0, None),  # trade secrets
    "Compromise privacy by leaking or inferring private information (person/individual)": (0, None),
    DNA_ILLEGAL: (0, 1),
}
# specific harm (prefix before ":") inside DNA_ILLEGAL -> violence
DO_NOT_ANSWER_ILLEGAL_VIOLENCE: dict[str, Label] = {
    "Violence and Physical Harm": 1,
    "Terrorist Activities": 1,
    "Threats and Intimidation": None,  # threatening messages, doxxing, ransom letters
    "Animal Abuse/Cruelty/Poaching": None,  # dog fights next to smuggling exotic pets
    "Sexual Exploitation and Pornography": None,
}


@register("do_not_answer")
def read_do_not_answer(folder: Path) -> Iterator[Example]:
    path = folder / "do_not_answer_en.csv"
    for line, row in table(path, ("question", "risk_area", "types_of_harm", "specific_harms")):
        harm = choice(row["types_of_harm"], DO_NOT_ANSWER, path, line, "types_of_harm")
        specific = row["specific_harms"].split(":")[0].strip()
        vio, ill = DO_NOT_ANSWER[harm]
        if harm == DNA_ILLEGAL:
            vio = DO_NOT_ANSWER_ILLEGAL_VIOLENCE.get(specific, 0)
        yield Example(
            row["question"], label_dict(None, vio, ill), "do_not_answer",
            {"risk_area": row["risk_area"], "types_of_harm": harm, "specific_harm": specific},
        )


SAP200_TOPICS: dict[str, tuple[Label, Label, Label]] = {
    "violence": (None, 1, None),
    "terrorism": (None, 1, 1),  # cyber-terrorism prompts get violence unknown (see read_sap200)
    "fraud": (None, 0, 1),
    "race": (None, None, 0),
    "religion": (None, None, 0),
    "politics": (None, 0, None),
    "suicide": (None, None, 0),
    "pornography_sexual_minors": (None, 0, None),  # taboo adult content next to minors
}
_CYBER = re.compile(r"cyber|hack", re.IGNORECASE)


@register("sap200_attack_prompts")
def read_sap200(folder: Path) -> Iterator[Example]:
    for topic, (tox, vio, ill) in SAP200_TOPICS.items():
        path = folder / f"SAP200_{topic}_generated_cases.json"
        cases = read_json(path)
        check(isinstance(cases, list), path, 1, "expected a list of cases")
        for case in cases:
            ok = isinstance(case, dict) and "Attack Prompt" in case
            check(ok, path, None, "a case has no 'Attack Prompt'")
            text = str(case["Attack Prompt"])
            # a sixth of the terrorism prompts plan cyber attacks: not violence against people
            v = None if topic == "terrorism" and _CYBER.search(text) else vio
            yield Example(text, label_dict(tox, v, ill), "sap200_attack_prompts", {"category": topic})


FIGSTEP: dict[str, tuple[Label, Label, Label]] = {
    "Illegal Activity": (None, None, 1),  # kidnapping next to money laundering
    "Hate Speech": (None, None, 0),
    "Malware Generation": (None, 0, 1),
    "Physical Harm": (None, None, None),  # weapons next to self-harm, narcotics and hacking
    "Fraud": (None, 0, None),  # fewer than half are crimes (SEO spam, plagiarism, fake followers)
    "Adult Content": (None, 0, 0),
    "Privacy Violation": (None, 0, None),
    "Legal Opinion": (0, 0, 0),
    "Financial Advice": (0, 0, 0),
    "Health Consultation": (0, 0, 0),
}
read_figstep = register("figstep_safebench")(_category_reader(
    "figstep_safebench", "data_question_safebench.csv", "question", "category_name", FIGSTEP
))

FORBIDDEN_QUESTIONS: dict[str, tuple[Label, Label, Label]] = {
    "Illegal Activity": (None, 0, 1),  # hacking, counterfeiting, fraud (one bank robbery)
    "Hate Speech": (None, None, 0),
    "Malware": (None, 0, 1),
    "Physical Harm": (None, None, None),  # weapons next to self-harm and cyber attacks
    "Economic Harm": (None, 0, None),  # gambling and MLM next to Ponzi schemes
    "Fraud": (None, 0, 1),
    "Pornography": (None, 0, 0),
    "Political Lobbying": (0, 0, 0),
    "Privacy Violence": (None, 0, None),
    "Legal Opinion": (0, 0, 0),
    "Financial Advice": (0, 0, 0),
    "Health Consultation": (0, 0, 0),
    "Gov Decision": (0, 0, 0),
}
read_jailbreak_llms = register("jailbreak_llms_verazuo")(_category_reader(
    "jailbreak_llms_verazuo", "forbidden_question_set.clean.csv", "question", "content_policy_name",
    FORBIDDEN_QUESTIONS,
))


@register("purplellama_cyberseceval")
def read_purplellama(folder: Path) -> Iterator[Example]:
    for file, labels in (("interpreter.json", label_dict(None, 0, 1)), ("mitre_frr.json", BENIGN)):
        path = folder / file
        items = read_json(path)
        check(isinstance(items, list), path, 1, "expected a list of prompts")
        for item in items:
            ok = isinstance(item, dict) and "mutated_prompt" in item
            check(ok, path, None, "an item has no 'mutated_prompt'")
            attack = item.get("attack_type")
            attack_str = ",".join(attack) if isinstance(attack, list) else str(attack or "")
            yield Example(
                str(item["mutated_prompt"]), dict(labels), "purplellama_cyberseceval",
                {"file": file, "attack_type": attack_str},
            )
