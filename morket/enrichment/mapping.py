"""Inputs mapped by meaning: what each column of a table holds, and which column feeds each provider input.

A column's *role* (a person's full name, first name, last name, a company name, a domain or website,
an email, a LinkedIn profile, a country) is read from its header, its type and a sample of its values,
in the context of the other headers: "Nom" beside "Prénom" is a last name, "Name" beside "Email" and
"Title" is a person, "Name" beside "Industry" and "Employees" with values like "Acme Inc" is a
company. A person's name is never taken for a company name.

When an operation needs a first and a last name and the table has only a full name, or a domain and
the table has only an email address, the input is *derived*: ``derive_input`` is the one function
that turns the source cell into the input (the run engine calls it for each mapped input that the
column's configuration marks as derived). Everything here is pure: no database, no request.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["full_name", "first_name", "last_name", "company_name", "domain", "email", "linkedin_url", "country"]
ROLES: tuple[str, ...] = (
    "full_name",
    "first_name",
    "last_name",
    "company_name",
    "domain",
    "email",
    "linkedin_url",
    "country",
)
ROLE_LABELS: dict[str, str] = {
    "full_name": "Person's full name",
    "first_name": "First name",
    "last_name": "Last name",
    "company_name": "Company name",
    "domain": "Domain or website",
    "email": "Email",
    "linkedin_url": "LinkedIn profile",
    "country": "Country",
}
# How an input is made from its source column: the cell as it is, or a part of it.
Derivation = Literal["first_name", "last_name", "domain"]
DERIVATIONS: tuple[str, ...] = ("first_name", "last_name", "domain")
DERIVATION_LABELS: dict[str, str] = {
    "first_name": "first name of",
    "last_name": "last name of",
    "domain": "domain of",
}
# The role each provider input name wants (inputs of morket/providers/*).
INPUT_ROLES: dict[str, str] = {
    "first_name": "first_name",
    "last_name": "last_name",
    "name": "full_name",
    "full_name": "full_name",
    "email": "email",
    "domain": "domain",
    "organization_name": "company_name",
    "company": "company_name",
    "company_name": "company_name",
    "linkedin_url": "linkedin_url",
    "country": "country",
}
# Roles an input can be derived from when no column plays its own role, in order of preference.
DERIVED_FROM: dict[str, tuple[tuple[str, Derivation], ...]] = {
    "first_name": (("full_name", "first_name"),),
    "last_name": (("full_name", "last_name"),),
    "domain": (("email", "domain"),),
}


def _fold(text: str) -> str:
    """Lower case without accents, every run of other characters one space ("Prénom " → "prenom")."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # firstName, companyDomain
    decomposed = unicodedata.normalize("NFKD", spaced.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.findall(r"[^\W_]+", plain))


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Whole headers (folded) and what they are. Ambiguous ones ("name", "nom", "nome") are decided by
# their neighbours and values in ``_ambiguous``.
_EXACT: dict[str, str] = {}
_HEADERS: dict[str, str] = {
    "full_name": (
        "full name|fullname|contact name|contact|person|person name|lead name|prospect|prospect name|"
        "contact full name|customer name|attendee name|nom complet|nombre completo|nome completo|"
        "vollstandiger name|voller name|volledige naam|imie i nazwisko|氏名|名前|姓名|フルネーム|이름"
    ),
    "first_name": (
        "first name|firstname|first|given name|givenname|fname|forename|contact first name|vorname|"
        "prenom|voornaam|imie|fornamn|fornavn|etunimi|nombre de pila|primeiro nome|名|ime"
    ),
    "last_name": (
        "last name|lastname|last|surname|family name|familyname|lname|contact last name|nachname|"
        "familienname|achternaam|nazwisko|efternamn|etternavn|sukunimi|apellido|apellidos|cognome|"
        "sobrenome|ultimo nome|姓|prezime"
    ),
    "company_name": (
        "company|company name|companyname|account|account name|organization|organisation|"
        "organization name|organisation name|org|employer|business|business name|current company|"
        "company name for emails|firm|firma|unternehmen|firmenname|societe|entreprise|"
        "nom de l entreprise|raison sociale|empresa|nombre de la empresa|nome da empresa|azienda|"
        "ragione sociale|bedrijf|bedrijfsnaam|nazwa firmy|foretag|会社名|企業名|会社|公司|公司名称|회사|회사명|"
        "associated company|parent company name"
    ),
    "domain": (
        "domain|company domain|company domain name|website|company website|web site|website url|"
        "company url|url|homepage|home page|web|site|site web|sitio web|pagina web|webseite|"
        "internetseite|sito web|sito|strona www|www|company website url|organization website|"
        "domain name|email domain|web page|webbplats|dominio|domaine|domein|domena|ウェブサイト|ホームページ|网站"
    ),
    "email": (
        "email|e mail|email address|e mail address|work email|business email|business email address|"
        "professional email|emails|mail|primary email|contact email|person email|courriel|"
        "adresse e mail|adresse email|correo|correo electronico|e mail adresse|email adresse|"
        "indirizzo email|e post|e postadress|e mailadres|endereco de e mail|メール|メールアドレス|电子邮件|邮箱|이메일"
    ),
    "linkedin_url": (
        "linkedin|linkedin url|linkedin profile|linkedin profile url|person linkedin url|profile url|"
        "linkedin link|linkedin profil|profil linkedin|perfil de linkedin|contact linkedin url|"
        "li url|public profile url|linked in"
    ),
    "country": (
        "country|country region|country name|person country|contact country|nation|land|pays|pais|"
        "paese|kraj|国|国家|国名|country code"
    ),
}
for _role, _names in _HEADERS.items():
    for _name in _names.split("|"):
        _EXACT[_fold(_name)] = _role


# Headers that mean "a name" and need their neighbours: a person's, a first name or a company's.
_AMBIGUOUS_NAMES = frozenset({"name", "nom", "nome", "nombre", "naam", "namn", "navn", "nimi", "nazwa"})
# What is certainly not the thing itself: a status or score about it, an id, a date.
_QUALIFIERS = _words(
    "status confidence score source sources verified verification date count type opt optout "
    "out bounced bounce sent opened clicked id catch valid validity quality grade updated "
    "created owner unsubscribed replied format pattern code number phone size industry "
    "employees revenue founded description keywords city state region zip postal street "
    "address twitter facebook title seniority department headline summary stage lifecycle "
    "rating tags notes"
)
_COMPANY_WORDS = _words(
    "company account organization organisation org employer firma empresa entreprise societe "
    "azienda bedrijf unternehmen business corporate"
)
_EMAIL_WORDS = _words("email emails mail courriel correo mailadres epost")
_SITE_WORDS = _words("domain domains website websites site homepage webseite webbplats dominio domaine domein url www")
_PERSON_CONTEXT = frozenset({"first_name", "last_name", "email", "linkedin_url"})
_PERSON_HINTS = ("title", "job", "position", "seniority", "headline", "poste", "cargo", "funktion", "puesto")
_COMPANY_HINTS = ("industry", "employees", "revenue", "founded", "headcount", "branche", "sector", "secteur")
_COMPANY_SUFFIX = re.compile(
    r"\b(inc|llc|ltd|limited|gmbh|ag|corp|corporation|co|plc|sa|sas|sarl|srl|spa|bv|nv|ab|as|oy|kk|pty|"
    r"group|holdings?|technologies|technology|tech|labs|software|systems|solutions|partners|ventures|"
    r"capital|bank|university|institute|foundation|agency|studio|studios|media|consulting|services)\b\.?$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LINKEDIN = re.compile(r"linkedin\.com/(in|pub|sales/(lead|people))/", re.IGNORECASE)
_LINKEDIN_COMPANY = re.compile(r"linkedin\.com/(company|school|showcase)/", re.IGNORECASE)
_HOSTLIKE = re.compile(r"^(https?://)?(www\.)?[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?(/\S*)?$", re.IGNORECASE)
_PERSON_NAME = re.compile(r"^[^\W\d_][^\W\d_'’.-]*(?:[ '’.-]+[^\W\d_][^\W\d_'’.-]*){1,4}\.?$")


@dataclass(frozen=True)
class ColumnInfo:
    """What role detection reads of one column: its id, header, type and a few of its values."""

    id: int
    name: str
    type: str = "text"
    samples: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ResolvedInput:
    """Which column feeds one provider input, and how (as it is, or a part of it)."""

    input: str
    column_id: int | None
    derive: str | None = None
    role: str | None = None

    @property
    def mapped(self) -> bool:
        return self.column_id is not None


def _texts(samples: Iterable[Any]) -> list[str]:
    found = []
    for value in samples:
        if isinstance(value, dict):
            value = value.get("value")
        if value is None:
            continue
        text = str(value).strip()
        if text:
            found.append(text)
    return found


def _share(values: Sequence[str], test: Any) -> float:
    return sum(1 for v in values if test(v)) / len(values) if values else 0.0


def looks_like_person(value: str) -> bool:
    """Two to five words of letters (with hyphens, apostrophes, initials), no company suffix."""
    return bool(_PERSON_NAME.match(value)) and not _COMPANY_SUFFIX.search(value.casefold())


def looks_like_company(value: str) -> bool:
    """A legal form or a company word at the end ("Acme Inc", "Bosch GmbH", "Initech Labs")."""
    return bool(_COMPANY_SUFFIX.search(value.casefold().rstrip(".")))


def _role_from_values(values: Sequence[str]) -> str | None:
    if not values:
        return None
    if _share(values, lambda v: _EMAIL.match(v)) >= 0.8:
        return "email"
    if _share(values, lambda v: _LINKEDIN.search(v)) >= 0.8:
        return "linkedin_url"
    if _share(values, lambda v: _LINKEDIN_COMPANY.search(v)) >= 0.5:
        return None
    if _share(values, lambda v: _HOSTLIKE.match(v) and "@" not in v) >= 0.8:
        return "domain"
    return None


def _role_from_header(folded: str) -> str | None:
    """The role a header names by itself, or None (ambiguous "name" headers are decided later)."""
    if folded in _EXACT:
        return _EXACT[folded]
    words = folded.split()
    if not words:
        return None
    if "linkedin" in words or "linkedin" in folded.replace(" ", ""):
        if _COMPANY_WORDS & set(words) or "company" in folded:
            return None
        return None if _QUALIFIERS & set(words) else "linkedin_url"
    if _QUALIFIERS & set(words):
        return None
    # "Contact: First name", "Person · Last name", "Company (Account) Name": the meaningful tail.
    for size in (3, 2):
        if len(words) > size and " ".join(words[-size:]) in _EXACT:
            tail = _EXACT[" ".join(words[-size:])]
            if tail in ("first_name", "last_name", "email", "country", "linkedin_url"):
                return tail
    if _EMAIL_WORDS & set(words) or "e mail" in folded or "e post" in folded:
        return "email"
    if _SITE_WORDS & set(words):
        return "domain"
    if words[-1] == "name" and _COMPANY_WORDS & set(words[:-1]):
        return "company_name"
    if words[-1] in _COMPANY_WORDS and len(words) <= 3:
        return "company_name"
    if words[-1] == "country" or words[0] == "country":
        return "country"
    return None


def _ambiguous(folded: str, values: Sequence[str], neighbours: set[str], hints: str) -> str | None:
    """A bare "name" header: a first name beside a last name, a person's, or a company's."""
    if folded == "nom" and "first_name" in neighbours:
        return "last_name"  # French: Prénom + Nom
    if folded in ("nome", "nombre", "naam", "namn", "navn", "nimi") and "last_name" in neighbours:
        return "first_name"  # Italian, Spanish, Portuguese: Nome + Cognome, Nombre + Apellidos
    if values and _share(values, looks_like_company) >= 0.5:
        return "company_name"
    if values and _share(values, looks_like_person) >= 0.6:
        return "full_name"
    if folded == "nazwa":
        return "company_name"  # Polish: Nazwa is a thing's name, a person's is Imię i nazwisko
    person = bool(neighbours & _PERSON_CONTEXT) or any(h in hints for h in _PERSON_HINTS)
    company = any(h in hints for h in _COMPANY_HINTS)
    if company and not person:
        return "company_name"
    # A person's name is the safe reading: it is never sent to a provider as a company's name.
    return "full_name"


def detect_roles(columns: Sequence[ColumnInfo]) -> dict[int, str]:
    """Each column's role (columns with none are left out); at most one column per role wins.

    Header first, then the column's type, then its values; ambiguous "name" headers are read in the
    context of the other columns. When two columns claim a role the first keeps it.
    """
    found: dict[int, str] = {}
    pending: list[tuple[ColumnInfo, str, list[str]]] = []
    folded_all = " ".join(_fold(c.name) for c in columns)
    for column in columns:
        folded = _fold(column.name)
        values = _texts(column.samples)
        if column.type in ("formula", "enrichment", "ai", "json", "checkbox", "number", "currency", "percent"):
            continue
        if column.type in ("date", "datetime", "multi_select"):
            continue
        words = folded.split()
        if words and words[-1] == "url" and "name" in words:
            continue  # a directory's page about the thing (Crunchbase's "Organization Name URL")
        role = _role_from_header(folded)
        if folded in _AMBIGUOUS_NAMES and role is None:
            pending.append((column, folded, values))
            continue
        by_values = _role_from_values(values)
        if role is None:
            if column.type == "email":
                role = "email"
            elif column.type == "domain":
                role = "domain"
            elif column.type == "url":
                role = "linkedin_url" if by_values == "linkedin_url" else ("domain" if by_values == "domain" else None)
            elif _QUALIFIERS & set(folded.split()):
                role = None
            else:
                role = by_values
        elif role == "domain" and by_values == "linkedin_url":
            role = "linkedin_url"
        elif role in ("full_name", "first_name", "last_name", "company_name") and by_values in ("email", "domain"):
            role = by_values
        if role is not None:
            found[column.id] = role
    neighbours = set(found.values())
    for column, folded, values in pending:
        found[column.id] = _ambiguous(folded, values, neighbours, folded_all)
    # One column per role: the first (leftmost) keeps it.
    seen: set[str] = set()
    for column in columns:
        role = found.get(column.id)
        if role is None:
            continue
        if role in seen:
            del found[column.id]
        seen.add(role)
    return found


def role_of_input(name: str, kind: str = "text") -> str | None:
    """The role a provider input wants, from its name (then its kind: email, domain)."""
    role = INPUT_ROLES.get(name)
    if role is None and kind in ("email", "domain"):
        role = kind
    return role


def resolve_inputs(inputs: Sequence[tuple[str, str]], roles: Mapping[int, str]) -> list[ResolvedInput]:
    """Map each ``(input name, kind)`` to the column playing its role, or one to derive it from.

    A company-name input is fed only by a column whose role is a company name, never by a person's
    name; an input no column can feed is returned unmapped.
    """
    by_role: dict[str, int] = {}
    for column_id, role in roles.items():
        by_role.setdefault(role, column_id)
    resolved: list[ResolvedInput] = []
    for name, kind in inputs:
        role = role_of_input(name, kind)
        if role is None:
            resolved.append(ResolvedInput(name, None))
            continue
        if role in by_role:
            resolved.append(ResolvedInput(name, by_role[role], None, role))
            continue
        for source, derivation in DERIVED_FROM.get(role, ()):
            if source in by_role:
                resolved.append(ResolvedInput(name, by_role[source], derivation, source))
                break
        else:
            resolved.append(ResolvedInput(name, None, None, role))
    return resolved


# --- deriving an input from its source cell ---------------------------------------------------------

_HONORIFICS = _words("mr mrs ms miss mx dr prof sir dame herr frau m mme mlle sr sra srta don dona sig sigra dott")
_SUFFIXES = _words("jr sr ii iii iv phd md mba esq cpa jd dds msc bsc ma ba pmp cfa dipl ing")
_PARTICLES = _words(
    "van von de der den da das dos do del della degli di du la le ter ten zu bin ibn al el st saint mac af av"
)


def _plain(word: str) -> str:
    return word.casefold().strip(".,")


def split_name(full: str) -> tuple[str | None, str | None]:
    """A person's full name as (first name, last name).

    "Ada Lovelace" → (Ada, Lovelace); "Lovelace, Ada" → (Ada, Lovelace); honorifics and suffixes
    ("Dr.", "Jr.", ", PhD") are dropped; particles stay with the last name ("Ludwig van Beethoven"
    → (Ludwig, van Beethoven)); middle names are dropped; one word is a first name only.
    """
    text = " ".join(str(full or "").split())
    if not text:
        return None, None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) >= 2 and all(_plain(w) in _SUFFIXES for w in " ".join(parts[1:]).split()):
        text = parts[0]
    elif len(parts) == 2:
        # "Lovelace, Ada" (the way CRMs and directories list people)
        text = f"{parts[1]} {parts[0]}"
    words = [w for w in text.replace(",", " ").split() if w]
    while words and _plain(words[0]) in _HONORIFICS and len(words) > 1:
        words.pop(0)
    while words and _plain(words[-1]) in _SUFFIXES and len(words) > 1:
        words.pop()
    words = [w for w in words if not (w.startswith("(") and w.endswith(")"))]
    if not words:
        return None, None
    if len(words) == 1:
        return words[0], None
    first = words[0]
    rest = words[1:]
    # The last name starts at the first particle after the first name, else it is the last word.
    for i, word in enumerate(rest):
        if _plain(word) in _PARTICLES and i < len(rest) - 1:
            return first, " ".join(rest[i:])
    return first, rest[-1]


def derive_input(derivation: str | None, value: Any) -> Any:
    """The input a derived mapping sends for one cell (``value`` as the engine reads a cell).

    ``first_name`` / ``last_name``: that part of a person's full name (None when the name has no
    such part); ``domain``: the registrable domain of a URL, host or email address. Without a
    derivation the value is sent as it is.
    """
    if derivation is None or value is None or value == "":
        return value
    text = str(value)
    if derivation == "first_name":
        return split_name(text)[0]
    if derivation == "last_name":
        return split_name(text)[1]
    if derivation == "domain":
        from morket.core.domains import registrable_domain

        return registrable_domain(text)
    raise ValueError(f"unknown derivation {derivation!r}")
