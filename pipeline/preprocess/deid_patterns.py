"""Rules of the de-identification gate that need no model: placeholders, speaker labels,
identifier patterns, context rules for names and a first-name gazetteer.

The functions take one turn's text and yield :class:`Candidate` spans; :mod:`pipeline.preprocess.deid`
settles overlaps (a lower ``priority`` wins among structured kinds). Nothing here logs or
stores found values.
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
    "name names first last full middle given family surname forename initials person people patient client "
    "therapist counsellor counselor clinician doctor dr nurse staff speaker redacted removed deleted anonymised "
    "anonymized anon masked private pii phi identifier unknown unk placeholder other location loc place city "
    "town county state country region street road address addr postcode zip zipcode postal date dob birthday "
    "time age year phone tel telephone mobile number num no email e-mail mail url website link web id ssn nhs "
    "mrn org organisation organization company employer workplace work school college university uni hospital "
    "clinic agency partner spouse wife husband child son daughter mother father mum mom dad sibling brother "
    "sister friend family relative ex boss colleague pet account policy member insurance record case "
    "reference ref".split()
)
_MASK = re.compile(  # XXX, xxx-xxx, XX/XX/XXXX, ****, ****@****.com, 555-XXXX
    r"(?<![\w*#])(?:\d{1,5}[-. ]?)?(?:[Xx]{2,}|\*{2,}|#{3,})(?![\w*#])"
    r"(?:[-/.@ ](?:[Xx]{2,}|\*{2,}|#{2,}|\d{1,4}|com|org|net|co\.uk)(?![\w*#]))*"
)
_LABEL = re.compile(r"^[ \t]*([A-Za-z][\w .'-]{0,30}?)[ \t]*:(?=\s|$)", re.M)
_ROLE_LABELS = set(
    "therapist client counsellor counselor patient clinician psychologist psychiatrist doctor dr interviewer "
    "interviewee respondent participant speaker facilitator moderator t c p th cl pt tx q a s i r ther cli "
    "unknown both all group member".split()
)


def _is_placeholder_content(content: str) -> bool:
    if len(re.sub(r"[^A-Za-z]", "", content)) >= 2 and re.fullmatch(r"[A-Z0-9_ .#-]+", content):
        return True  # [NAME], <PERSON_1>, {{CLIENT NAME}}, [ID_NUMBER]
    words = [w for w in re.split(r"[\s_.#-]+", content.lower()) if w and not w.isdigit()]
    return bool(words) and all(w in _PLACEHOLDER_WORDS for w in words)  # [name], <person>


def placeholder_spans(text: str) -> list[tuple[int, int]]:
    """Placeholders left by de-identification: [NAME], <PERSON>, {{NAME}}, (REDACTED), XXX, ****."""
    spans = [m.span() for m in _BRACKETED.finditer(text) if _is_placeholder_content(m.group(1))]
    return spans + [m.span() for m in _MASK.finditer(text)]


def label_spans(text: str, speaker_id: str = "") -> list[tuple[int, int]]:
    """Speaker labels at the start of a line ("Therapist:", "T:", "CLIENT 1:", the speaker id)."""
    out = []
    for m in _LABEL.finditer(text):
        label = m.group(1).strip()
        bare = re.sub(r"[\d\s.]+", " ", label).strip().lower()
        if bare in _ROLE_LABELS or bare.startswith("speaker") or (
                speaker_id and label.lower() == speaker_id.strip().lower()):
            out.append(m.span(1))
    return out


# --- structured identifiers --------------------------------------------------------------------

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|january|february|april|june|july|august|september|october|"
    r"november|december)\.?"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?(?!\d)"
_YEAR = r"(?:19|20)\d{2}(?!\d)"
_STATES = (r"A[LKZR]|C[AOT]|D[EC]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|S[CD]|"
           r"T[NX]|UT|V[AT]|W[AIVY]")
_STREET_TYPES = (
    r"Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Close|Court|Ct|Crescent|Cres|Terrace|Grove|Gardens|Place|"
    r"Pl|Square|Sq|Way|Boulevard|Blvd|Parkway|Pkwy|Circle|Row|Mews|Walk|Hill|Rise|View|Park|Highway|Hwy|"
    r"Parade|Green|Vale"
)
_UNIT = r"(?:Apt\.?|Apartment|Flat|Unit|Suite|#)"
_UK_POSTCODE = r"[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?[ \t]?\d[ABD-HJLNP-UW-Z]{2}"
_CAP_WORD = r"(?:Mc|Mac|O['’]|D['’])?[A-Z][a-z]+(?:-[A-Z][a-z]+)?"
_ID_INTRO = (
    r"(?i:\b(?:mrn|medical\s+record(?:\s+(?:number|no\.?|#))?|(?:hospital|record|patient|nhs|case|account|"
    r"reference|passport|member(?:ship)?|policy|claim|chi|ni|national\s+insurance|insurance(?:\s+(?:policy|"
    r"member|id))?|driv(?:ing|er['’]?s)\s+licen[cs]e)(?:\s+(?:number|no\.?|id|#))?|ssn|social(?:\s+security)?"
    r"(?:\s+number)?|ref\.?\s*(?:no\.?|#))(?:\s+(?:on|in|from)\s+(?:the|my|your|his|her|this|that)\s+[a-z]+)?)"
)
_STRUCTURED_RAW = [  # (regex, kind, priority, capture group, cheap test the text must pass)
    (r"(?<![\w.+'-])[A-Za-z0-9][\w.+'-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", "email", 0, 0, "@"),
    (r"(?i)\b[a-z][\w.]*(?:\s+dot\s+\w+)*\s+at\s+(?:gmail|hotmail|yahoo|outlook|icloud|aol|live|btinternet|"
     r"protonmail|sky)\s+dot\s+(?:com|net|org|co\s+dot\s+uk)\b", "email", 0, 0, "dot"),
    (r"(?i)\b(?:https?://|www\.)[^\s<>\"'()]+", "url", 0, 0, "url"),
    (r"(?i)(?<![@\w.-])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io|co\.uk|org\.uk|uk|info|"
     r"me|ly|app|blog)\b(?:/[^\s<>\"']*)?", "url", 0, 0, "."),
    (_ID_INTRO + r"(?:\s*(?:is|was|:|=|#|,|number|no\.?)\s*){0,3}([A-Z0-9]{1,6}(?:[ -][A-Z0-9]{1,6}){1,5}|"
     r"(?=[\w/-]*\d{3})[A-Za-z0-9][\w/-]{2,24}[A-Za-z0-9])(?![\w-])", "id_number", 1, 1, "digit"),
    (r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])", "id_number", 2, 0, "digit"),  # US SSN
    (r"(?<![\w-])[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D](?![\w-])", "id_number", 2, 0, "digit"),
    (r"(?<![\w+-])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?![\w-])", "phone", 4, 0, "digit"),
    (r"(?<![\w-])(?:1[\s.-])?(?:\(\d{3}\)\s?|\d{3}(?:[.-] ?|\s))\d{3}(?:[.-] ?|\s)\d{4}(?![\w-])", "phone", 4, 0, "digit"),
    (r"(?<![\w-])\d{3}-\d{4}(?![\w-])", "phone", 4, 0, "digit"),
    (r"(?<![\w-])0\d{1,4}(?:[ -]?\d{2,6}){1,3}(?![\w-])", "phone", 4, 0, "digit"),
    (r"(?<![\w+-])\+?\d(?:[ .-]\d){9,14}(?![\w-])", "phone", 4, 0, "digit"),  # spaced out: 0 7 7 0 0 ...
    (rf"(?<![\w/.-]){_DAY}(?:\s+of)?\s+{_MONTH}(?:,?\s+{_YEAR})?", "date", 4, 0, "digit"),
    (rf"(?<![\w/.-]){_MONTH}\s+(?:the\s+)?{_DAY}(?:,?\s+{_YEAR})?", "date", 4, 0, "digit"),
    (r"(?<![\d/.-])(?:0?[1-9]|[12]\d|3[01])([/.-])(?:0?[1-9]|[12]\d|3[01])\1(?:19|20)?\d{2}(?![\d/-]|\.\d)",
     "date", 4, 0, "digit"),
    (r"(?<![\d/.-])(?:19|20)\d{2}([/-])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?![\d/-])",
     "date", 4, 0, "digit"),
    (rf"(?<![A-Za-z0-9]){_UK_POSTCODE}(?![A-Za-z0-9])", "postcode", 5, 0, "digit"),
    (r"(?i:\bzip(?:\s*code)?|\b(?:postal|post)\s*code|\bpostcode)\W{0,3}(?:is\s+|was\s+)?"
     r"(\d{5}(?:-\d{4})?|[a-z]{1,2}\d[a-z\d]?\s?\d[a-z]{2})(?![\w-])", "postcode", 5, 1, "digit"),
    (rf"\b(?:{_STATES})\s+(\d{{5}}(?:-\d{{4}})?)(?![\w-])", "postcode", 5, 1, "digit"),
    (r"(?<![\w-])\d{5}-\d{4}(?![\w-])", "postcode", 5, 0, "digit"),
    (rf"(?:{_UNIT}\s+\w{{1,5}},?\s+)?(?<![\w.,-])\d{{1,5}}[A-Za-z]?,?\s+(?:[NSEW]\.?\s+)?(?:{_CAP_WORD}\s+){{1,3}}"
     rf"(?:{_STREET_TYPES})\b(?:,?\s+{_UNIT}\s*\w{{1,5}}\b)?", "postal_address", 5, 0, "digit"),
    (r"(?<![\d,.])\d{8,}(?![\d]|[,.]\d)", "id_number", 6, 0, "digit"),
    (r"(?<![\w-])\d{3,5}(?:[ -]\d{2,5}){2,4}(?![\w-])", "id_number", 6, 0, "digit"),  # 4471 8823 9910
]
STRUCTURED = [(re.compile(rx), kind, prio, group, need) for rx, kind, prio, group, need in _STRUCTURED_RAW]
_NHS_SHAPE = re.compile(r"[1-9]\d\d \d{3} \d{4}")


def nhs_number_valid(digits: str) -> bool:
    """The NHS number modulus-11 check (10 digits)."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits[:9])) % 11
    return check != 10 and (0 if check == 11 else check) == int(digits[9])


def _phone(value: str) -> str:
    """The longest prefix of whole digit groups with a phone number's digit count
    ("07700 900123 12" -> "07700 900123"); "" when there is none."""
    def ok(v: str) -> bool:
        digits = sum(c.isdigit() for c in v)
        return digits in (10, 11) if v.startswith("0") else 7 <= digits <= 15

    while value and not ok(value):
        value = re.sub(r"[\s.-]*\d+\)?$", "", value) if re.search(r"[\s.-]\d+\)?$", value) else ""
    return value


def _valid(kind: str, priority: int, value: str) -> str:
    """The value as reported ("" to drop it): phone numbers trimmed to a valid length; ID
    numbers with at least 4 digits (9 for bare digit groups) that are not a bare year."""
    if kind == "phone":
        return _phone(value)
    if kind != "id_number":
        return value
    value = re.sub(r"(?:\s+[AI])+$", "", value)  # "943 476 5919 I think"
    digits = sum(c.isdigit() for c in value)
    short = digits < 4 or (priority == 6 and not value.isdigit() and digits < 9)
    return "" if short or re.fullmatch(r"(?:19|20)\d\d", value) else value


_SPACES = re.compile(r"\s+")  # \s is str.isspace() (both Py_UNICODE_ISSPACE)
_NOT_PLAIN_SPACING = re.compile(r"\s\s|[^\S ]")  # a run of two, or a tab, line break, no-break space...
_DIGIT = re.compile(r"\d")


def _collapsed(text: str) -> tuple[str, Sequence[int]]:
    """``text`` with every run of whitespace (line breaks of a hard-wrapped export, CRLF, tabs)
    as one space, and the original position of each character (plus the end). Most turns have
    single spaces only: they are returned as they are, positions unchanged."""
    if not _NOT_PLAIN_SPACING.search(text):
        return text, range(len(text) + 1)
    chars: list[str] = []
    where: list[int] = []
    pos = 0
    for m in _SPACES.finditer(text):
        chars += (text[pos:m.start()], " ")
        where += range(pos, m.start() + 1)  # the run's first character stands for the run
        pos = m.end()
    chars.append(text[pos:])
    where += range(pos, len(text) + 1)
    return "".join(chars), where


def structured_candidates(text: str) -> Iterator[Candidate]:
    """Structured identifiers, matched on the text with whitespace runs collapsed (so a phone
    number wrapped over two lines is still one number), reported at their original positions."""
    view, where = _collapsed(text)
    for c in _structured_candidates(view):
        yield Candidate(where[c.start], where[c.end - 1] + 1 if c.end > c.start else where[c.start],
                        c.kind, c.detector, c.priority)


def _structured_candidates(text: str) -> Iterator[Candidate]:
    lower = text.lower()
    present = {need for need, ok in (("@", "@" in text), ("dot", " dot " in lower), (".", "." in text),
                                     ("url", "http" in lower or "www" in lower),
                                     # every "digit" pattern needs a decimal digit (\d), and a
                                     # value without one is never valid (_valid), so this test
                                     # drops no candidate
                                     ("digit", _DIGIT.search(text) is not None)) if ok}
    for regex, kind, priority, group, need in STRUCTURED:
        pos = 0
        while need in present and (m := regex.search(text, pos)) is not None:
            start = m.start(group)
            value = _valid(kind, priority, m.group(group).rstrip(".,;:!?"))
            pos = start + len(value) if value else m.start() + 1  # search on after a trimmed value
            if value and kind == "phone" and _NHS_SHAPE.fullmatch(value) and nhs_number_valid(value.replace(" ", "")):
                yield Candidate(start, pos, "id_number", PATTERNS, 3)  # a valid NHS number
            elif value:
                yield Candidate(start, pos, kind, PATTERNS, priority)


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def mask(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """Blank spans out with a character that is neither a word character nor a space, so no
    rule reads across a placeholder ("my sister [NAME], Leeds")."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "\ufffc" * (end - start)
    return "".join(chars)


def choose_structured(masked: str, rounds: int = 3) -> list[Candidate]:
    """Structured candidates without overlaps, by priority then length. When one loses to an
    overlapping winner, the text is searched again with the winners masked, so what lies
    outside the winner is still found (as it would be in the redacted text)."""
    chosen: list[Candidate] = []
    for _ in range(rounds):
        lost = False
        for c in sorted(structured_candidates(masked), key=lambda c: (c.priority, c.start - c.end, c.start)):
            if not any(overlaps(c[:2], o[:2]) for o in chosen):
                chosen.append(c)
            elif c not in chosen:
                lost = True
        if not lost:
            break
        masked = mask(masked, [c[:2] for c in chosen])
    return chosen


# --- names: context rules and a first-name gazetteer -------------------------------------------

COMMON_WORDS = set((
    # calendar, family and address words, interjections, pronouns, roles, services, medication,
    # shops and brands, parties, star signs, adverbs: capitalised in talk, nobody's identifier
    "People Parents Kids Friends Others Most Many Folks Teachers Doctors Nurses Research Science Life Time "
    "A A&E ACT ADHD Act Actually Adderall Afterwards Again Ah Aldi All Allah Also Although Amazon Amitriptyline An "
    "And Any Anybody Anyone Anything Anyway Apparently Apr April Aquarius Argos Aries Aripiprazole Asda Aug August "
    "Auntie Aunty Autumn Awful Babe Baby Bad Basically Because Besides Bible Bless Boots Both Bro Bupropion But Bye "
    "CBT COVID Call Calm Cancer Capricorn Cheers Christ Christmas Church Citalopram Client College Concerta "
    "Conservative Conservatives Costa Costco Council Counsellor Counselor Court Covid DBT Dad Daddy Darling Dear "
    "Dec December Deliveroo Democrat Democrats Diazepam Diwali Doctor Dr Duloxetine EMDR ER Each East Easter "
    "Eastern Easy Eid Elvanse Email Emails Er Erm Escitalopram Eventually Every Everybody Everyone Everything "
    "Facebook Fall Fast Feb February Fine First Fluoxetine Friday GAD GP Gabapentin Gemini God Good Google Gran "
    "Grandad Granddad Grandma Grandpa Granny Great Greggs Halloween Hanukkah He Headspace Heaven Hell Hello Her "
    "Here Hi Him His Hmm Honestly Honey Housing How However I ICU Ibuprofen Instagram Instead It Its Jan January "
    "Jesus Jobcentre Jul July Jun June Just Labour Lamotrigine Last Later Lexapro Libra Lidl Like Lithium Lord Love "
    "Lovers Luckily Madam Mar March Mate May Maybe McDonald's Me Meanwhile Melatonin Memory Message Messages "
    "Methadone Methylphenidate Mhm Mind Mirtazapine Miss Mm Mmm Mom Mommy Monday Morning Morrisons Mr Mrs Ms Mum "
    "Mummy Mx My Myself NHS Naltrexone Nan Nana Netflix Never New Next No Nobody Nope North Northern Not Nothing "
    "Nov November Now Nurse OCD OK Obviously Oct October Oh Ok Okay Olanzapine Once Or Otherwise Our PHQ PTSD "
    "Paracetamol Patient Phone Pisces Please Plus Police Pregabalin Primark Propranolol Prozac Quality Quetiapine "
    "Ramadan Really Relate Republican Republicans Right Ritalin Sagittarius Sainsbury Sainsbury's Samaritans "
    "Saturday School Scorpio Second Sep Sept September Seroquel Sertraline Sesame Session She Sir Sis Slow Snapchat "
    "So Some Somebody Someone Something Sometimes Sorry South Southern Spotify Spring Starbucks Still Subutex "
    "Summer Sunday Target Taurus Teams Tesco Text Texts Thanks Thanksgiving That The Their Them Then Therapist "
    "Therapy There These They This Those Though Thursday TikTok Today Tomorrow Tonight Tories Tory Trazodone "
    "Tuesday Twitter Uber Uh Um Uncle Unfortunately Uni Us Valentine Valentines Valium Venlafaxine Virgo Voicemail "
    "Waitrose Walmart We Wednesday Well Wellbutrin West Western What Whatever WhatsApp When Where Which Who Why "
    "Winter Work Wow Xanax Xmas Yeah Year Yes Yesterday You YouTube Your Yourself Zoloft Zoom Zopiclone"
).split())
# Names that are also ordinary words: counted only with supporting context (title, kinship...).
AMBIGUOUS_NAMES = set((
    "Amber Angel April Art Autumn Bill Bishop Black Blessing Bliss Brandy Brown Candy Carol Charity Chase Cherry "
    "Cliff Crystal Daisy Dawn Dean Destiny Don Drew Duke Faith Favour Felicity Forest Frank Gene Ginger Glen "
    "Goodness Grace Grant Gray Green Grey Guy Harmony Hazel Heather Hero Holly Honor Honour Hope Hunter Iris Ivy "
    "Jack Jade Joy June Justice King Lance Liberty Lily Long Major Mark Max May Melody Mercy Miles Misty Nick Noble "
    "Olive Page Pat Patience Pearl Penny Precious Price Prince Princess Prudence Rain Ray Reed Rich River Rob Robin "
    "Rocky Rose Royal Ruby Sage Sandy Sky Sly Sonny Star Storm Sue Summer Sunny Sunshine Trinity Violet Wade White "
    "Will Winter Young"
).split())
FIRST_NAMES = set((  # common first names in the UK and the US, of many origins
    "Leo Aaliyah Aaron Abbie Abdul Abena Abigail Adam Ade Adebayo Adrian Agnieszka Ahmed Aidan Ailsa Aisha Alan "
    "Alasdair Albert Aled Alejandro Aleksandra Alessandro Alex Alexander Alexandra Alfie Ali Alice Alicia Alison "
    "Amanda Amelia Aminata Amir Amit Amy Ana Ananya Anastasia Andrea Andrei Andrew Angela Angus Anita Anjali Ann "
    "Anna Anne Annie Anthony Antonio Anya Aoife Archie Arjun Arthur Aryan Ashley Asif Astrid Ayaan Babajide Barbara "
    "Barry Bartholomew Beatrice Becky Ben Benjamin Beth Bethany Betty Bilal Bisi Bogdan Bradley Brandon Brenda "
    "Brian Bridget Bruno Bryony Caitlin Callum Cameron Carl Carla Carlos Carmen Caroline Casey Catherine Catriona "
    "Cerys Chantelle Charlie Charlotte Chelsea Chen Chiamaka Chiara Chidi Chinedu Chioma Chloe Chris Christine "
    "Christopher Ciara Ciaran Cillian Claire Clara Claudia Clive Colin Connor Courtney Craig Dafydd Daniel Danielle "
    "Danny Darnell Darren David DeShawn Debbie Deborah Declan Deepak Demi Denise Dennis Derek Diana Diane Diego "
    "Divya Dmitri Dominic Donna Doris Dorothy Dylan Ebony Edith Edward Eilidh Eleanor Elena Elif Elijah Elizabeth "
    "Ella Ellie Elsie Emeka Emily Emma Eoin Eric Erin Ernest Esme Ethan Eve Evelyn Ewan Faisal Farah Fatima Fatou "
    "Femi Fergus Ffion Finley Fiona Florence Folake Francesca Francesco Frankie Freddie Freya Funmi Gabriel Gareth "
    "Gary Gemma George Georgia Gethin Gillian Giulia Graham Gregor Gurpreet Hamish Hamza Hana Hannah Harold "
    "Harpreet Harriet Harry Harvey Hassan Hayley Helen Henry Ibrahim Idris Ifeoma Imani Imogen Imran Ines Iona "
    "Irina Isaac Isabel Isabella Isaiah Isla Ivan Jacob Jake Jakub Jamal James Jamie Jane Janet Jasmine Jason "
    "Jaspreet Javier Jayden Jean Jenna Jennifer Jenny Jerome Jessica Jessie Joan Joanna Joanne Joao Jodie John "
    "Jonathan Jordan Jorge Joseph Josh Joshua Juan Julia Julie Justin Kacper Kai Karen Katarzyna Kate Katie Kayla "
    "Kayleigh Kehinde Keisha Keith Kelly Kenneth Kerry Kevin Khalid Kieran Kim Kiran Kirsty Kofi Krzysztof Kwame "
    "Kyle Lakshmi Laura Lauren Layla Leah Leanne Lee Leila Lewis Liam Lina Linda Lindsay Lisa Liz Logan Lola "
    "Lorenzo Louie Louise Lucas Lucia Lucy Luis Lukas Luke Lydia Mabel Magdalena Malachi Malcolm Malik Manpreet "
    "Manuel Marco Marcus Marek Margaret Maria Mariam Marie Marlon Marta Martin Mary Mason Mateus Matilda Matteo "
    "Matthew Maureen Meera Megan Mehmet Melissa Michael Michelle Miguel Mohammed Morag Morgan Muhammad Musa Nadia "
    "Nancy Naomi Nasreen Natalia Natalie Nathan Nathaniel Neha Neil Ngozi Niamh Nicola Nicole Nigel Nikolai Nkechi "
    "Noor Obinna Oksana Olena Oliver Olivia Olu Oluwaseun Omar Orla Oscar Owen Pablo Padraig Parveen Patricia Paul "
    "Paula Pauline Pawel Pedro Peter Philip Phoebe Piotr Pooja Poppy Priya Rachel Rahul Rajesh Rashid Ravi Rebecca "
    "Reggie Rhian Rhys Richard Riley Rita Robert Roger Rohan Roisin Ronnie Rosa Ryan Sadie Sakura Sally Samantha "
    "Samira Samuel Sandra Sanjay Saoirse Sara Sarah Scott Sean Sergei Sergio Shabnam Shanice Shannon Sharon Shaun "
    "Sheila Shirley Shreya Sian Simon Sinead Siobhan Sipho Sofia Sophie Stacey Stanley Stephen Steve Steven Stuart "
    "Sukhdeep Sunil Suresh Susan Svetlana Szymon Taiwo Tamara Tanisha Tanya Tariq Taylor Temitope Teresa Terry Theo "
    "Thomas Tiago Tim Timothy Tobi Tom Tomas Tomasz Tony Tracey Tracy Trevor Tunde Tyler Tyrone Uche Usman Vanessa "
    "Vicky Victoria Vikram Walter Wei Wendy William Xin Yan Yara Yasmin Yaw Yousef Yuki Yusuf Zaid Zainab Zara "
    "Zeynep Zoe Zubair"
).split())

_NAME = rf"{_CAP_WORD}(?:[ \t]+{_CAP_WORD}){{0,2}}"
_TITLES = (
    r"Dr|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Nurse|Sister|Father|Fr|Pastor|Rev|Reverend|Rabbi|Imam|Sir|"
    r"Dame|Lady|Judge|Officer|Detective|Sergeant|Sgt|Coach|Auntie|Aunty|Aunt|Uncle|Grandma|Grandpa|Nana|Nan|"
    r"Granny|Cousin"
)
_KIN = (  # kinship and the people around a client
    r"(?:(?:little|big|older|younger|eldest|youngest|late|ex|best|new|old|step|half|twin)[\s-]+)?(?:sister|"
    r"brother|son|daughter|mum|mom|mother|dad|father|husband|wife|partner|boyfriend|girlfriend|fianc[ée]e?|ex|"
    r"friend|mate|boss|manager|colleague|neighbou?r|cousin|aunt|auntie|uncle|nan|nana|gran|grandma|"
    r"grandmother|grandad|granddad|grandfather|grandpa|niece|nephew|kid|child|baby|stepdad|stepmum|stepmom|"
    r"therapist|counsell?or|doctor|gp|teacher|sponsor|case\s*worker|case\s+manager|social\s+worker|"
    r"key\s*worker|support\s+worker|care\s+coordinator|carer|mentor|tutor|supervisor|psychiatrist|"
    r"psychologist|nurse|health\s+visitor|midwife|solicitor|lawyer|priest|vicar|flatmate|roommate|landlord|"
    r"landlady)"
)
_POSS = r"(?:my|our|his|her|their|your)"
_SPEECH = (r"said|told|texted|messaged|rang|asked|replied|shouted|yelled|screamed|admitted|promised|"
           r"called\s+me|came\s+round|came\s+over")
_STREETS_PLACE = r"Street|Road|Avenue|Lane|Crescent|Terrace|Boulevard|Gardens|Grove|Drive|Mews|Parkway"
_TRAVEL = r"go|goes|going|gone|went|been|trip|holiday|holidays|visit|visiting|visited|drove|drive|driving|flew|fly"
_LIVE = (r"lives?|lived|living|grew\s+up|moved|moving|born|raised|based|stay(?:s|ed|ing)?|relocated|"
         r"i['’]?m\s+from|comes?\s+from|is\s+from")

_NAME_RULES_RAW = [  # (regex, kind, whether the context is strong enough for an ambiguous name: "Grace")
    (rf"\b(?:{_TITLES})\.?[ \t]+({_NAME})", "person", True),
    (rf"(?i:\bmy\s+name(?:['’]s|\s+is)|\bname['’]s|\bcalls?\s+me|\bi['’]?m\s+called|\bthey\s+call\s+me|"
     rf"\bnamed|\bcalled)[ \t]+({_NAME})", "person", True),
    (rf"(?i:\bi['’]?m|\bi\s+am|\bthis\s+is)[ \t]+({_NAME})(?=[ \t,]+(?:from|here|calling|speaking)\b)",
     "person", True),
    (rf"(?i:\b{_POSS}\s+{_KIN})(?:[ \t]*,[ \t]*|[ \t]+(?i:is|was|called|named)[ \t]+|[ \t]+)({_NAME})",
     "person", True),
    (rf"\b(?!\w+ly\b)({_NAME}),[ \t]+(?i:{_POSS}[ \t]+{_KIN})\b(?!['’])", "person", True),  # "Rob, my mate"
    (rf"\b({_CAP_WORD})[ \t]+from[ \t]+(?i:work|church|school|college|uni|next\s+door|the\s+(?:group|"
     rf"office|gym|clinic|ward|team|pub|club|estate|mosque|temple))\b", "person", False),  # "Gloria from church"
    (rf"\b({_CAP_WORD})(?=[ \t]+(?:{_SPEECH})\b)", "person", False),  # "Okonkwo said"
    (rf"(?i:\b(?:{_LIVE}))[ \t]+(?i:in|on|to|at|near|off|from|back\s+to)?[ \t]*({_NAME})", "place", True),
    (rf"(?i:\b(?:{_TRAVEL})[ \t]+(?:to|in|up\s+to|down\s+to|over\s+to))[ \t]+({_NAME})", "place", True),
    (rf"\b((?:{_CAP_WORD}[ \t]+){{1,3}}(?:{_STREETS_PLACE}))\b", "place", True),
    # the town of an address: "12 Elm Grove, Bristol", "Leeds LS6 3QW", "Portland, OR 97205"
    (rf"\b(?:{_STREET_TYPES})\b\.?(?:,?[ \t]+{_UNIT}[ \t]*\w{{1,5}})?,[ \t]+({_NAME})", "place", True),
    (rf"\b({_NAME}),?[ \t]+(?={_UK_POSTCODE}\b)", "place", True),
    (rf"\b({_NAME}),[ \t]+(?=(?:{_STATES})[ \t]+\d{{5}}\b)", "place", True),
]
NAME_RULES = [(re.compile(rx), kind, strong) for rx, kind, strong in _NAME_RULES_RAW]
# a lower-case known first name after a kinship word or an introduction (ASR output is lower case)
_LOWER_NAME = re.compile(rf"(?i:\b{_POSS}[ \t]+{_KIN}[ \t]*,?|\bmy\s+name(?:['’]s|\s+is)|\bcall\s+me|"
                         rf"\bi['’]?m\s+called)[ \t]+([a-z]+)\b")
_GAZ_TOKEN = re.compile(rf"\b({_CAP_WORD})\b(?:[ \t]+({_CAP_WORD})\b)?")
_AND_NAMES = re.compile(rf"\b({_CAP_WORD})[ \t]+(?:and|&)[ \t]+({_CAP_WORD})\b")


def trim_name(text: str, start: int, end: int, context: bool) -> tuple[int, int] | None:
    """Drop common words from the ends of a name span; None when nothing name-like is left
    (or only an ambiguous name such as "Grace" without strong ``context``)."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    while words and text[words[0][0]:words[0][1]] in COMMON_WORDS:
        words.pop(0)
    while words and text[words[-1][0]:words[-1][1]] in COMMON_WORDS:
        words.pop()
    if not words or (len(words) == 1 and not context and text[slice(*words[0])] in AMBIGUOUS_NAMES):
        return None
    return words[0][0], words[-1][1]


_UPPER = re.compile(r"[A-Z]")


def name_candidates(text: str) -> Iterator[Candidate]:
    """Person and place names from context rules (title, "my name is", kinship, "lives in").
    Every rule's name is made of capitalised words (``_NAME``, ``_CAP_WORD``: an ASCII capital
    each), so a text without one (most ASR turns) skips them; the lower-case rule still runs."""
    for regex, kind, strong in NAME_RULES if _UPPER.search(text) else ():
        pos = 0
        while (m := regex.search(text, pos)) is not None:
            trimmed = trim_name(text, *m.span(1), context=strong)
            pos = trimmed[1] if trimmed else m.start(1) + 1  # "Dr. Okafor Dr. Okafor": both
            if trimmed:
                yield Candidate(*trimmed, kind, PATTERNS, 7)
    for m in _LOWER_NAME.finditer(text):
        if m.group(1).title() in FIRST_NAMES:
            yield Candidate(*m.span(1), "person", PATTERNS, 7)


def _known(word: str | None) -> bool:
    return bool(word) and (word in FIRST_NAMES or any(p in FIRST_NAMES for p in word.split("-")))


def gazetteer_candidates(text: str) -> Iterator[Candidate]:
    """Known first names (capitalised), with a following capitalised surname, and the other
    name of a pair ("Tariq and Hamza")."""
    if not _UPPER.search(text):  # both patterns start with a capitalised word
        return
    for m in _GAZ_TOKEN.finditer(text):
        first, second = m.group(1), m.group(2)
        if not _known(first):
            if _known(second):
                yield Candidate(*m.span(2), "person", GAZETTEER, 8)
            continue
        end = m.end(2) if second and second not in COMMON_WORDS else m.end(1)
        yield Candidate(m.start(1), end, "person", GAZETTEER, 8)
    for m in _AND_NAMES.finditer(text):
        a, b = m.group(1), m.group(2)
        if _known(a) != _known(b) and not {a, b} & (COMMON_WORDS | AMBIGUOUS_NAMES):
            yield Candidate(*m.span(2 if _known(a) else 1), "person", GAZETTEER, 8)
