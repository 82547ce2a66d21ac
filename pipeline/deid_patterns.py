"""Rules of the de-identification gate that need no model: placeholders, speaker labels,
identifier patterns and a first-name gazetteer.

Every function here takes one turn's text and returns candidate spans
``(start, end, kind, detector, priority)``; a lower priority wins when structured candidates
overlap (see :mod:`pipeline.deid`). Nothing here logs or stores found values.
"""

from __future__ import annotations

import re
from typing import Iterator, NamedTuple, Sequence

KINDS = ("email", "phone", "url", "postal_address", "postcode", "date", "id_number", "person", "place")
NAME_KINDS = ("person", "place")
PATTERNS, GAZETTEER = "patterns", "gazetteer"


class Candidate(NamedTuple):
    start: int
    end: int
    kind: str
    detector: str
    priority: int


# --- placeholders and speaker labels: never reported -------------------------------------------

_BRACKETED = re.compile(r"(?:\[\[|\{\{|<<|[\[{<(])\s*([^\[\]{}<>()\n]{1,40}?)\s*(?:\]\]|\}\}|>>|[\]}>)])")
_PLACEHOLDER_WORDS = set(
    "name names first last full middle given family surname forename initials person people "
    "patient client therapist counsellor counselor clinician doctor dr nurse staff speaker "
    "redacted removed deleted anonymised anonymized anon masked private pii phi identifier "
    "unknown unk placeholder other location loc place city town county state country region "
    "street road address addr postcode zip zipcode postal date dob birthday time age year "
    "phone tel telephone mobile number num no email e-mail mail url website link web id ssn "
    "nhs mrn org organisation organization company employer workplace work school college "
    "university uni hospital clinic agency partner spouse wife husband child son daughter "
    "mother father mum mom dad sibling brother sister friend family relative ex boss "
    "colleague pet account policy member insurance record case reference ref".split()
)
_MASK = re.compile(
    r"(?<![\w*#])(?:\d{1,5}[-. ]?)?(?:[Xx]{2,}|\*{2,}|#{3,})"
    r"(?:[-/.@ ]?(?:[Xx]{2,}|\*{2,}|#{2,}|\d{1,4}|com|org|net|co\.uk)(?![\w*#]))*(?![\w*#])"
)
_LABEL = re.compile(r"^[ \t]*([A-Za-z][\w .'-]{0,30}?)[ \t]*:(?=\s|$)", re.M)
_ROLE_LABELS = set(
    "therapist client counsellor counselor patient clinician psychologist psychiatrist doctor "
    "dr interviewer interviewee respondent participant speaker facilitator moderator "
    "t c p th cl pt tx q a s i r ther cli unknown both all group member".split()
)


def _is_placeholder_content(content: str) -> bool:
    letters = re.sub(r"[^A-Za-z]", "", content)
    if len(letters) >= 2 and re.fullmatch(r"[A-Z0-9_ .#-]+", content):
        return True  # [NAME], <PERSON_1>, {{CLIENT NAME}}, [ID_NUMBER]
    words = [w for w in re.split(r"[\s_.#-]+", content.lower()) if w and not w.isdigit()]
    return bool(words) and all(w in _PLACEHOLDER_WORDS for w in words)


def placeholder_spans(text: str) -> list[tuple[int, int]]:
    """Spans of placeholders left by de-identification ([NAME], <PERSON>, {{NAME}}, XXX, ****)."""
    spans = [m.span() for m in _BRACKETED.finditer(text) if _is_placeholder_content(m.group(1))]
    spans += [m.span() for m in _MASK.finditer(text)]
    return spans


def label_spans(text: str, speaker_id: str = "") -> list[tuple[int, int]]:
    """Speaker labels at the start of a line ("Therapist:", "T:", "CLIENT 1:", the speaker id)."""
    out = []
    for m in _LABEL.finditer(text):
        label = m.group(1).strip()
        bare = re.sub(r"[\d\s.]+", " ", label).strip().lower()
        if bare in _ROLE_LABELS or bare.startswith("speaker") or (
            speaker_id and label.lower() == speaker_id.strip().lower()
        ):
            out.append(m.span(1))
    return out


# --- structured identifiers --------------------------------------------------------------------

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|january|february|april|june|"
    r"july|august|september|october|november|december)\.?"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?(?!\d)"
_YEAR = r"(?:19|20)\d{2}(?!\d)"
_STATES = (
    r"A[LKZR]|C[AOT]|D[EC]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|S[CD]|"
    r"T[NX]|UT|V[AT]|W[AIVY]"
)
_STREET_TYPES = (
    r"Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Close|Court|Ct|Crescent|Cres|Terrace|Grove|"
    r"Gardens|Place|Pl|Square|Sq|Way|Boulevard|Blvd|Parkway|Pkwy|Circle|Row|Mews|Walk|Hill|Rise|"
    r"View|Park|Highway|Hwy|Parade|Green|Vale"
)
_CAP_WORD = r"(?:Mc|Mac|O['’]|D['’])?[A-Z][a-z]+(?:-[A-Z][a-z]+)?"
_ID_INTRO = (
    r"(?i:\b(?:mrn|medical\s+record(?:\s+(?:number|no\.?|#))?|(?:hospital|record|patient|nhs|"
    r"case|account|reference|passport|member(?:ship)?|policy|claim|chi|ni|national\s+insurance|"
    r"insurance(?:\s+(?:policy|member|id))?|driv(?:ing|er['’]?s)\s+licen[cs]e)"
    r"(?:\s+(?:number|no\.?|id|#))?|ssn|social(?:\s+security)?(?:\s+number)?|ref\.?\s*(?:no\.?|#)))"
)

# (regex, kind, priority, group, needs): group is the capture group holding the identifier;
# needs is a cheap test the text must pass before the regex runs (most turns have no digits).
STRUCTURED: list[tuple[re.Pattern, str, int, int, str]] = [
    (re.compile(r"(?<![\w.+'-])[A-Za-z0-9][\w.+'-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), "email", 0, 0, "@"),
    (re.compile(r"(?i)\b[a-z][\w.]*\s+at\s+(?:gmail|hotmail|yahoo|outlook|icloud|aol|live|"
                r"btinternet|protonmail|sky)\s+dot\s+(?:com|net|org|co\s+dot\s+uk)\b"), "email", 0, 0, "dot"),
    (re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'()]+"), "url", 0, 0, "url"),
    (re.compile(r"(?i)(?<![@\w.-])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io|"
                r"co\.uk|org\.uk|uk|info|me|ly|app|blog)\b(?:/[^\s<>\"']*)?"), "url", 0, 0, "."),
    (re.compile(_ID_INTRO + r"(?:\s*(?:is|was|:|=|#|number|no\.?)\s*){0,3}"
                r"((?=[A-Za-z0-9-]*\d{3})[A-Za-z0-9][A-Za-z0-9-]{2,20}[A-Za-z0-9]|"
                r"\d{2,5}(?:[\s-]\d{2,5}){1,4})(?![\w-])"), "id_number", 1, 1, "digit"),
    (re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"), "id_number", 2, 0, "digit"),
    (re.compile(r"(?<![\w-])[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D](?![\w-])"), "id_number", 2, 0, "digit"),
    (re.compile(r"(?<![\w+-])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?![\w-])"), "phone", 4, 0, "digit"),
    (re.compile(r"(?<![\w-])(?:1[\s.-])?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w-])"), "phone", 4, 0, "digit"),
    (re.compile(r"(?<![\w-])\d{3}-\d{4}(?![\w-])"), "phone", 4, 0, "digit"),
    (re.compile(r"(?<![\w-])0\d{1,4}(?:[ -]?\d{2,6}){1,3}(?![\w-])"), "phone", 4, 0, "digit"),
    (re.compile(rf"(?<![\w/.-]){_DAY}(?:\s+of)?\s+{_MONTH}(?:,?\s+{_YEAR})?"), "date", 4, 0, "digit"),
    (re.compile(rf"(?<![\w/.-]){_MONTH}\s+(?:the\s+)?{_DAY}(?:,?\s+{_YEAR})?"), "date", 4, 0, "digit"),
    (re.compile(r"(?<![\d/.-])(?:0?[1-9]|[12]\d|3[01])([/.-])(?:0?[1-9]|[12]\d|3[01])\1"
                r"(?:19|20)?\d{2}(?![\d/-]|\.\d)"), "date", 4, 0, "digit"),
    (re.compile(r"(?<![\d/.-])(?:19|20)\d{2}([/-])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?![\d/-])"), "date", 4, 0, "digit"),
    (re.compile(r"(?<![A-Za-z0-9])[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?\s?\d[ABD-HJLNP-UW-Z]{2}(?![A-Za-z0-9])"), "postcode", 5, 0, "digit"),
    (re.compile(r"(?i:\bzip(?:\s*code)?|\b(?:postal|post)\s*code|\bpostcode)\W{0,3}(?:is\s+|was\s+)?"
                r"(\d{5}(?:-\d{4})?|[a-z]{1,2}\d[a-z\d]?\s?\d[a-z]{2})(?![\w-])"), "postcode", 5, 1, "digit"),
    (re.compile(rf"\b(?:{_STATES})\s+(\d{{5}}(?:-\d{{4}})?)(?![\w-])"), "postcode", 5, 1, "digit"),
    (re.compile(r"(?<![\w-])\d{5}-\d{4}(?![\w-])"), "postcode", 5, 0, "digit"),
    (re.compile(rf"(?:(?:Flat|Apt\.?|Apartment|Unit|Suite)\s+\w{{1,5}},?\s+)?(?<![\w.,-])\d{{1,5}}[A-Za-z]?,?\s+"
                rf"(?:{_CAP_WORD}\s+){{1,3}}(?:{_STREET_TYPES})\b"
                rf"(?:,?\s+(?:Apt\.?|Apartment|Flat|Unit|Suite|#)\s*\w{{1,5}}\b)?"), "postal_address", 5, 0, "digit"),
    (re.compile(r"(?<![\d,.])\d{8,}(?![\d]|[,.]\d)"), "id_number", 6, 0, "digit"),
]


def nhs_number_valid(digits: str) -> bool:
    """The NHS number modulus-11 check (10 digits)."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits[:9])) % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


_NHS_SHAPE = re.compile(r"[1-9]\d\d \d{3} \d{4}")


def _needs(text: str) -> set[str]:
    lower = text.lower()
    return {need for need, present in (
        ("@", "@" in text), ("dot", " dot " in lower), ("url", "http" in lower or "www" in lower),
        (".", "." in text), ("digit", any(c.isdigit() for c in text))) if present}


def structured_candidates(text: str) -> Iterator[Candidate]:
    present = _needs(text)
    for regex, kind, priority, group, need in STRUCTURED:
        if need not in present:
            continue
        for m in regex.finditer(text):
            start, end = m.span(group)
            value = text[start:end].rstrip(".,;:!?")
            end = start + len(value)
            if kind == "phone" and not 7 <= sum(c.isdigit() for c in value) <= 15:
                continue
            if kind == "phone" and value.startswith("0") and sum(c.isdigit() for c in value) not in (10, 11):
                continue
            if kind == "phone" and _NHS_SHAPE.fullmatch(value) and nhs_number_valid(value.replace(" ", "")):
                kind_here, prio = "id_number", 3  # a valid NHS number, not a phone number
            else:
                kind_here, prio = kind, priority
            if end > start:
                yield Candidate(start, end, kind_here, PATTERNS, prio)


# --- names: context rules and a first-name gazetteer -------------------------------------------

COMMON_WORDS = set(
    # months, days, holidays
    "January February March April May June July August September October November December "
    "Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec Monday Tuesday Wednesday Thursday Friday "
    "Saturday Sunday Christmas Easter Halloween Ramadan Diwali Eid Hanukkah Thanksgiving "
    "Xmas Valentine Valentines New Year Spring Autumn Fall Winter Summer Morning Tonight Today "
    # religion, family and address words, interjections
    "God Jesus Christ Lord Allah Heaven Hell Bible Church Mum Mom Dad Mummy Mommy Daddy Nan Nana "
    "Gran Granny Grandma Grandad Granddad Grandpa Auntie Aunty Uncle Sis Bro Babe Baby Honey "
    "Darling Love Mate Sir Madam Yeah Yes No Nope Okay Ok OK Um Uh Erm Er Mm Mmm Hmm Mhm Oh Ah "
    "Wow Well So Like Right Sorry Thanks Please Hi Hello Bye Anyway Honestly Really Just Maybe "
    "Whatever Because And But Or Then Now Yesterday Tomorrow Fine Good Great Bad Awful Never "
    # pronouns and determiners
    "I Me You He She It We They Him Her Us Them My Your His Its Our Their Myself Yourself "
    "Someone Somebody Everyone Everybody Nobody Anyone Anybody This That These Those Who What "
    "Which Where When Why How The A An All Both Each Every Some Any Not Here There "
    # roles, services, clinical words
    "Therapist Client Doctor Dr Nurse Counsellor Counselor Patient GP Mr Mrs Ms Miss Mx "
    "Session Therapy CBT DBT EMDR ACT PTSD OCD ADHD NHS A&E ER ICU PHQ GAD Covid COVID Zoom "
    "Teams WhatsApp Facebook Instagram TikTok Netflix Google Twitter YouTube Snapchat "
    "Memory Easy Fast Slow Sesame Quality Lovers Who It Act "
    # shops and brands that come up in therapy talk and are no one's identifier
    "Tesco Lidl Aldi Asda Sainsbury Sainsbury's Morrisons Waitrose Primark Boots Argos Costa "
    "Greggs Starbucks McDonald's Walmart Target Costco Amazon Uber Deliveroo Spotify".split()
)
# Names that are also ordinary words: counted only with supporting context (title, kinship...).
AMBIGUOUS_NAMES = set(
    "Hope Grace Faith Joy May June April Will Mark Bill Pat Sue Rose Summer Dawn Sunny Sunshine "
    "Art Chase Destiny Honor Honour Patience Charity Prudence Amber Ruby Crystal Jade Ivy Holly "
    "Heather Daisy Lily Iris Violet Autumn Winter Star Sky Rain River Forest Angel Max Ray Rich "
    "Frank Guy Jack Pearl Robin Penny Ginger Brandy Candy Cherry Misty Storm Sage Hunter Drew "
    "Gene Carol Reed Cliff Rocky Sandy Sonny Hazel Olive Glen Dean Miles Don Rob Nick Sly Hero "
    "Harmony Trinity Melody Felicity Bliss Liberty Justice Royal Noble Major Duke King Prince "
    "Princess Bishop Lance Wade Grant Price Page Young Long Brown White Black Green Gray Grey".split()
)
FIRST_NAMES = set(
    "Aaron Abigail Adam Adrian Ahmed Aidan Aisha Alan Alex Alexander Alexandra Alice Alicia "
    "Alison Amanda Amelia Amir Amy Andrea Andrew Angela Anita Ann Anna Anne Annie Anthony Antonio "
    "Anya Arjun Arthur Ashley Astrid Barbara Becky Ben Benjamin Beth Bethany Bilal Bogdan Brandon "
    "Brenda Brian Bridget Caitlin Callum Cameron Carl Carla Carlos Caroline Catherine Charlie "
    "Charlotte Chelsea Chen Chloe Chris Christine Christopher Ciara Claire Clara Colin Connor "
    "Craig Daniel Danielle Darren David Debbie Deborah Declan Deepak Denise Dennis Derek Diana "
    "Diane Dominic Donna Dylan Edward Eleanor Elena Elizabeth Ella Ellie Emily Emma Eric Erin "
    "Ethan Eve Evelyn Fatima Fiona Francesca Gabriel Gareth Gary Gemma George Georgia Gillian "
    "Graham Hannah Harriet Harry Hassan Helen Henry Ibrahim Imogen Isaac Isabel Isabella Isla "
    "Jacob Jake James Jamie Jan Jane Janet Jasmine Jason Jayden Jennifer Jenny Jessica Joanna "
    "Joanne Jodie John Jonathan Jordan Joseph Josh Joshua Julia Julie Justin Karen Kate Katie "
    "Kayleigh Keith Kelly Kenneth Kerry Kevin Kieran Kim Kirsty Krzysztof Kyle Laura Lauren "
    "Leah Leanne Lee Leo Lewis Liam Linda Lisa Liz Lola Louise Lucas Lucy Luke Lydia Maria "
    "Mariam Marie Marcus Margaret Martin Mary Matthew Megan Melissa Michael Michelle Mohammed "
    "Muhammad Nadia Naomi Natalie Nathan Neil Nicola Nicole Niamh Nigel Oliver Olivia Omar "
    "Oscar Owen Paul Paula Peter Philip Phoebe Piotr Priya Rachel Rahul Rebecca Rhys Richard "
    "Rita Robert Ryan Sadie Sally Samantha Samuel Sandra Sanjay Sara Sarah Scott Sean Shannon "
    "Sharon Shaun Shirley Simon Sinead Siobhan Sofia Sophie Stacey Stephen Steve Steven Stuart "
    "Susan Tamara Tanya Teresa Thomas Tim Timothy Tom Tomasz Tony Tracey Tracy Vanessa Vicky "
    "Victoria Vikram Wendy William Yasmin Yusuf Zainab Zara Zoe Abdul Ade Adebayo Aaliyah Ana "
    "Aleksandra Ali Amit Ananya Andrei Babajide Chidi Chinedu Chioma Dmitri Elif Emeka Femi Ifeoma "
    "Jamal Jorge Juan Kwame Lakshmi Layla Lina Luis Magdalena Malik Mehmet Ngozi Nkechi Olu "
    "Oluwaseun Pablo Pedro Ravi Rosa Sakura Shreya Sipho Tariq Tunde Wei Xin Yan Yuki Zeynep".split()
)

_NAME = rf"{_CAP_WORD}(?:[ \t]+{_CAP_WORD}){{0,2}}"
_TITLES = (
    r"Dr|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Nurse|Sister|Father|Fr|Pastor|Rev|Reverend|Rabbi|"
    r"Imam|Sir|Dame|Lady|Judge|Officer|Detective|Sergeant|Sgt|Coach|Auntie|Aunty|Aunt|Uncle|"
    r"Grandma|Grandpa|Nana|Nan|Granny|Cousin"
)
_KIN = (
    r"sister|brother|son|daughter|mum|mom|mother|dad|father|husband|wife|partner|boyfriend|"
    r"girlfriend|fianc[ée]e?|ex|friend|mate|boss|manager|colleague|neighbou?r|cousin|aunt|auntie|"
    r"uncle|nan|nana|gran|grandma|grandmother|grandad|granddad|grandfather|grandpa|niece|nephew|"
    r"kid|child|baby|stepdad|stepmum|stepmom|therapist|counsell?or|doctor|gp|teacher|sponsor|"
    r"case\s+worker|social\s+worker|carer|flatmate|roommate|landlord|landlady|"
    r"ex-(?:husband|wife|boyfriend|girlfriend|partner)"
)
_STREETS_PLACE = r"Street|Road|Avenue|Lane|Crescent|Terrace|Boulevard|Gardens|Grove|Drive|Mews|Parkway"

NAME_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(rf"\b(?:{_TITLES})\.?[ \t]+({_NAME})"), "person"),
    (re.compile(rf"(?i:\bmy\s+name(?:['’]s|\s+is)|\bname['’]s|\bcalls?\s+me|\bi['’]?m\s+called|"
                rf"\bthey\s+call\s+me|\bnamed|\bcalled)[ \t]+({_NAME})"), "person"),
    (re.compile(rf"(?i:\bi['’]?m|\bi\s+am|\bthis\s+is)[ \t]+({_NAME})(?=[ \t,]+(?:from|here|calling|speaking)\b)"), "person"),
    (re.compile(rf"(?i:\b(?:my|our|his|her|their|your)\s+(?:(?:little|big|older|younger|eldest|"
                rf"youngest|late|ex|best|new|old|step|half|twin)[\s-]+)?(?:{_KIN}))"
                rf"(?:[ \t]*,[ \t]*|[ \t]+(?i:is|was|called|named)[ \t]+|[ \t]+)({_NAME})"), "person"),
    (re.compile(rf"(?i:\b(?:lives?|lived|living|grew\s+up|moved|moving|born|raised|based|"
                rf"stay(?:s|ed|ing)?|relocated|i['’]?m\s+from|comes?\s+from|is\s+from))"
                rf"[ \t]+(?i:in|on|to|at|near|off|from|back\s+to)?[ \t]*({_NAME})"), "place"),
    (re.compile(rf"(?i:\b(?:go|goes|going|gone|went|been|trip|holiday|holidays|visit|visiting|"
                rf"visited|drove|drive|driving|flew|fly|flying)[ \t]+(?:to|in|up\s+to|down\s+to|over\s+to))"
                rf"[ \t]+({_NAME})"), "place"),
    (re.compile(rf"\b((?:{_CAP_WORD}[ \t]+){{1,3}}(?:{_STREETS_PLACE}))\b"), "place"),
    # the town of an address: "12 Elm Grove, Bristol", "Leeds LS6 3QW", "Portland, OR 97205"
    (re.compile(rf"\b(?:{_STREET_TYPES})\b\.?(?:,?[ \t]+(?:Apt\.?|Apartment|Flat|Unit|Suite|#)[ \t]*\w{{1,5}})?"
                rf",[ \t]+({_NAME})"), "place"),
    (re.compile(rf"\b({_NAME}),?[ \t]+(?=[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?[ \t]?\d[ABD-HJLNP-UW-Z]{{2}}\b)"), "place"),
    (re.compile(rf"\b({_NAME}),[ \t]+(?=(?:{_STATES})[ \t]+\d{{5}}\b)"), "place"),
]
# a kinship word before a lower-case known first name ("my friend jodie"), as in ASR output
_KIN_LOWER = re.compile(rf"(?i:\b(?:my|our|his|her|their|your)[ \t]+(?:{_KIN}))[ \t]*,?[ \t]+([a-z]+)\b")


def trim_name(text: str, start: int, end: int, context: bool) -> tuple[int, int] | None:
    """Drop common words from the ends of a name span; None when nothing name-like is left."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    while words and text[words[0][0]:words[0][1]] in COMMON_WORDS:
        words.pop(0)
    while words and text[words[-1][0]:words[-1][1]] in COMMON_WORDS:
        words.pop()
    if not words:
        return None
    if len(words) == 1 and not context and text[words[0][0]:words[0][1]] in AMBIGUOUS_NAMES:
        return None
    return words[0][0], words[-1][1]


def name_candidates(text: str) -> Iterator[Candidate]:
    """Person and place names from context rules (title, "my name is", kinship, "lives in")."""
    for regex, kind in NAME_RULES:
        for m in regex.finditer(text):
            trimmed = trim_name(text, *m.span(1), context=True)
            if trimmed:
                yield Candidate(*trimmed, kind, PATTERNS, 7)
    for m in _KIN_LOWER.finditer(text):
        if m.group(1).title() in FIRST_NAMES:
            yield Candidate(*m.span(1), "person", PATTERNS, 7)


_GAZ_TOKEN = re.compile(rf"\b({_CAP_WORD})\b(?:[ \t]+({_CAP_WORD})\b)?")


def gazetteer_candidates(text: str) -> Iterator[Candidate]:
    """Known first names (capitalised), extended by a following capitalised surname."""
    for m in _GAZ_TOKEN.finditer(text):
        first, second = m.group(1), m.group(2)
        if first not in FIRST_NAMES:
            if second in FIRST_NAMES:
                yield Candidate(m.start(2), m.end(2), "person", GAZETTEER, 8)
            continue
        end = m.end(2) if second and second not in COMMON_WORDS else m.end(1)
        yield Candidate(m.start(1), end, "person", GAZETTEER, 8)


# --- resolving overlaps ------------------------------------------------------------------------


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _mask(text: str, spans: Sequence[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _subtract(text: str, cand: Candidate, taken: Sequence[tuple[int, int]]) -> list[Candidate]:
    """The parts of a name candidate outside ``taken`` spans that still look like a name."""
    pieces = [(cand.start, cand.end)]
    for t0, t1 in taken:
        if any(overlaps(p, (t0, t1)) for p in pieces):
            pieces = [q for p in pieces for q in ((p[0], min(p[1], t0)), (max(p[0], t1), p[1])) if q[1] > q[0]]
    out = []
    for start, end in pieces:
        m = re.search(r"[A-Za-z][\w'’.-]*(?:\s+[A-Za-z][\w'’.-]*)*", text[start:end])
        if m and len(m.group(0)) >= 2:
            out.append(cand._replace(start=start + m.start(), end=start + m.end()))
    return out


def _merge_names(cands: list[Candidate]) -> list[Candidate]:
    """Overlapping name candidates become their union; the best (lowest priority) names it."""
    groups: list[list[Candidate]] = []
    for c in sorted(cands, key=lambda c: (c.start, -c.end)):
        if groups and c.start < max(g.end for g in groups[-1]):
            groups[-1].append(c)
        else:
            groups.append([c])
    merged = []
    for group in groups:
        best = min(group, key=lambda c: (c.priority, -(c.end - c.start)))
        merged.append(best._replace(start=min(c.start for c in group), end=max(c.end for c in group)))
    return merged


def find_candidates(text: str, speaker_id: str = "", extra_names: Sequence[Candidate] = ()) -> list[Candidate]:
    """Non-overlapping candidates in one text, in order. Placeholders and speaker labels are
    masked first; overlapping structured candidates are settled by priority, then length;
    name candidates (rules, gazetteer, ``extra_names`` such as NER) lose the parts covered by
    structured ones and are merged with each other."""
    blocked = placeholder_spans(text) + label_spans(text, speaker_id)
    masked = _mask(text, blocked) if blocked else text
    chosen: list[Candidate] = []
    for c in sorted(structured_candidates(masked), key=lambda c: (c.priority, c.start - c.end, c.start)):
        if not any(overlaps((c.start, c.end), (o.start, o.end)) for o in chosen):
            chosen.append(c)
    names = [*name_candidates(masked), *gazetteer_candidates(masked), *extra_names]
    taken = blocked + [(c.start, c.end) for c in chosen]
    pieces = [p for c in names for p in _subtract(text, c, taken)]
    return sorted(chosen + _merge_names(pieces))
