"""Input mapping by meaning, over header sets taken from real exports (CRMs, prospecting tools,
LinkedIn, spreadsheets in several languages): each column's role, and which column feeds each input
of the work email waterfall. A person's name is never sent as a company's name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from morket.enrichment import mapping
from morket.enrichment.mapping import ColumnInfo

PEOPLE = ("Ada Lovelace", "Grace Hopper", "Alan Turing")
COMPANIES = ("Acme Inc", "Globex Corporation", "Initech Labs")
LINKEDIN = ("https://www.linkedin.com/in/ada", "https://www.linkedin.com/in/grace", "linkedin.com/in/alan")

# (source, [(header, role or None, sample values)])
HEADER_SETS: list[tuple[str, list[tuple[str, str | None, tuple[str, ...]]]]] = [
    ("the issue's table", [("Name", "full_name", PEOPLE), ("Company domain", "domain", ())]),
    ("the issue's table, no values yet", [("Name", "full_name", ()), ("Company domain", "domain", ())]),
    (
        "HubSpot contacts",
        [
            ("Record ID", None, ()),
            ("First Name", "first_name", ()),
            ("Last Name", "last_name", ()),
            ("Email", "email", ()),
            ("Phone Number", None, ()),
            ("Company Name", "company_name", ()),
            ("Job Title", None, ()),
            ("Lifecycle Stage", None, ()),
            ("Contact owner", None, ()),
            ("Country/Region", "country", ()),
            ("Website URL", "domain", ()),
        ],
    ),
    (
        "HubSpot companies",
        [
            ("Record ID", None, ()),
            ("Company name", "company_name", ()),
            ("Company Domain Name", "domain", ()),
            ("Industry", None, ()),
            ("Number of Employees", None, ()),
            ("Country/Region", "country", ()),
            ("LinkedIn Company Page", None, ()),
        ],
    ),
    (
        "Salesforce leads",
        [
            ("Lead ID", None, ()),
            ("Salutation", None, ()),
            ("First Name", "first_name", ()),
            ("Last Name", "last_name", ()),
            ("Title", None, ()),
            ("Company", "company_name", ()),
            ("Email", "email", ()),
            ("Website", "domain", ()),
            ("Lead Source", None, ()),
            ("Country", "country", ()),
        ],
    ),
    (
        "Salesforce contacts report",
        [
            ("Full Name", "full_name", ()),
            ("Account Name", "company_name", ()),
            ("Email", "email", ()),
            ("Mailing Country", "country", ()),
            ("Title", None, ()),
        ],
    ),
    (
        "Pipedrive persons",
        [
            ("Person - Name", "full_name", ()),
            ("Person - Organization", "company_name", ()),
            ("Person - Email - Work", "email", ()),
            ("Person - Phone - Work", None, ()),
            ("Organization - Address", None, ()),
        ],
    ),
    (
        "Apollo people",
        [
            ("First Name", "first_name", ()),
            ("Last Name", "last_name", ()),
            ("Title", None, ()),
            ("Company", "company_name", ()),
            ("Company Name for Emails", None, ()),
            ("Email", "email", ()),
            ("Email Status", None, ()),
            ("Email Confidence", None, ()),
            ("Seniority", None, ()),
            ("# Employees", None, ()),
            ("Industry", None, ()),
            ("Person Linkedin Url", "linkedin_url", ()),
            ("Website", "domain", ()),
            ("Company Linkedin Url", None, ()),
            ("Twitter Url", None, ()),
            ("City", None, ()),
            ("Country", "country", ()),
            ("Company Country", None, ()),
        ],
    ),
    (
        "Apollo accounts",
        [
            ("Company", "company_name", ()),
            ("Account Stage", None, ()),
            ("# Employees", None, ()),
            ("Industry", None, ()),
            ("Website", "domain", ()),
            ("Company Linkedin Url", None, ()),
            ("Company Country", "country", ()),
            ("Annual Revenue", None, ()),
        ],
    ),
    (
        "LinkedIn connections (Connections.csv)",
        [
            ("First Name", "first_name", ()),
            ("Last Name", "last_name", ()),
            ("URL", "linkedin_url", LINKEDIN),
            ("Email Address", "email", ()),
            ("Company", "company_name", ()),
            ("Position", None, ()),
            ("Connected On", None, ()),
        ],
    ),
    (
        "LinkedIn Sales Navigator lead list",
        [
            ("Name", "full_name", PEOPLE),
            ("Title", None, ()),
            ("Company", "company_name", COMPANIES),
            ("Location", None, ()),
            ("Profile URL", "linkedin_url", ()),
        ],
    ),
    (
        "Sales Navigator export (Evaboot)",
        [
            ("First Name", "first_name", ()),
            ("Last Name", "last_name", ()),
            ("Job Title", None, ()),
            ("Company Name", "company_name", ()),
            ("Company Domain", "domain", ()),
            ("LinkedIn URL", "linkedin_url", ()),
            ("Sales Navigator URL", None, ("https://www.linkedin.com/sales/lead/ACwAA,NAME",)),
            ("Company LinkedIn URL", None, ()),
        ],
    ),
    (
        "Clay export",
        [
            ("Full Name", "full_name", ()),
            ("First Name", "first_name", ()),
            ("Last Name", "last_name", ()),
            ("Company Domain", "domain", ()),
            ("LinkedIn Profile", "linkedin_url", ()),
            ("Job Title", None, ()),
        ],
    ),
    (
        "ZoomInfo",
        [
            ("First Name", "first_name", ()),
            ("Last Name", "last_name", ()),
            ("Job Title", None, ()),
            ("Email Address", "email", ()),
            ("Direct Phone Number", None, ()),
            ("Company Name", "company_name", ()),
            ("Website", "domain", ()),
            ("Country", "country", ()),
        ],
    ),
    (
        "Hunter export",
        [
            ("Email address", "email", ()),
            ("First name", "first_name", ()),
            ("Last name", "last_name", ()),
            ("Position", None, ()),
            ("Company", "company_name", ()),
            ("Domain name", "domain", ()),
            ("Confidence score", None, ()),
        ],
    ),
    (
        "Mailchimp audience",
        [
            ("Email Address", "email", ()),
            ("First Name", "first_name", ()),
            ("Last Name", "last_name", ()),
            ("Address", None, ()),
            ("Phone Number", None, ()),
            ("MEMBER_RATING", None, ()),
            ("OPTIN_TIME", None, ()),
        ],
    ),
    (
        "Google Contacts",
        [
            ("Name", "full_name", ()),
            ("Given Name", "first_name", ()),
            ("Family Name", "last_name", ()),
            ("E-mail 1 - Value", "email", ()),
            ("Organization 1 - Name", "company_name", ()),
            ("Website 1 - Value", "domain", ()),
        ],
    ),
    (
        "Outlook contacts",
        [
            ("First Name", "first_name", ()),
            ("Middle Name", None, ()),
            ("Last Name", "last_name", ()),
            ("Company", "company_name", ()),
            ("E-mail Address", "email", ()),
            ("Web Page", "domain", ()),
            ("Country/Region", "country", ()),
        ],
    ),
    (
        "Crunchbase companies",
        [
            ("Organization Name", "company_name", ()),
            ("Organization Name URL", None, ("https://www.crunchbase.com/organization/stripe",)),
            ("Industries", None, ()),
            ("Headquarters Location", None, ()),
            ("Website", "domain", ()),
            ("Number of Employees", None, ()),
        ],
    ),
    (
        "a company list whose names have legal forms",
        [("Name", "company_name", COMPANIES), ("Website", "domain", ()), ("Industry", None, ())],
    ),
    (
        "a company list with bare brand names",
        [
            ("Name", "company_name", ("Stripe", "Notion", "Figma")),
            ("Domain", "domain", ()),
            ("Industry", None, ()),
            ("Headcount", None, ()),
        ],
    ),
    (
        "event attendees",
        [("Attendee Name", "full_name", ()), ("Email", "email", ()), ("Company", "company_name", ())],
    ),
    (
        "a spreadsheet of people and companies",
        [("Name", "full_name", PEOPLE), ("Company", "company_name", COMPANIES), ("Email", "email", ())],
    ),
    (
        "a warehouse table in snake_case",
        [
            ("first_name", "first_name", ()),
            ("last_name", "last_name", ()),
            ("company_domain", "domain", ()),
            ("linkedin_url", "linkedin_url", ()),
            ("email", "email", ()),
        ],
    ),
    (
        "an app export in camelCase",
        [
            ("firstName", "first_name", ()),
            ("lastName", "last_name", ()),
            ("companyName", "company_name", ()),
            ("emailAddress", "email", ()),
            ("websiteUrl", "domain", ()),
        ],
    ),
    (
        "German spreadsheet",
        [
            ("Vorname", "first_name", ()),
            ("Nachname", "last_name", ()),
            ("Firma", "company_name", ()),
            ("E-Mail", "email", ()),
            ("Webseite", "domain", ()),
            ("Land", "country", ()),
        ],
    ),
    (
        "French spreadsheet",
        [
            ("Prénom", "first_name", ()),
            ("Nom", "last_name", ()),
            ("Société", "company_name", ()),
            ("Courriel", "email", ()),
            ("Site web", "domain", ()),
            ("Pays", "country", ()),
        ],
    ),
    (
        "French list with one name column",
        [("Nom", "full_name", ()), ("Entreprise", "company_name", ()), ("Adresse e-mail", "email", ())],
    ),
    (
        "Spanish spreadsheet",
        [
            ("Nombre", "first_name", ()),
            ("Apellidos", "last_name", ()),
            ("Empresa", "company_name", ()),
            ("Correo electrónico", "email", ()),
            ("Sitio web", "domain", ()),
            ("País", "country", ()),
        ],
    ),
    (
        "Spanish list with a full name",
        [("Nombre completo", "full_name", ()), ("Empresa", "company_name", ()), ("Dominio", "domain", ())],
    ),
    (
        "Italian spreadsheet",
        [
            ("Nome", "first_name", ()),
            ("Cognome", "last_name", ()),
            ("Azienda", "company_name", ()),
            ("Email", "email", ()),
            ("Sito web", "domain", ()),
            ("Paese", "country", ()),
        ],
    ),
    (
        "Portuguese (Brazil) spreadsheet",
        [
            ("Nome", "first_name", ()),
            ("Sobrenome", "last_name", ()),
            ("Empresa", "company_name", ()),
            ("E-mail", "email", ()),
            ("Site", "domain", ()),
            ("País", "country", ()),
        ],
    ),
    (
        "Dutch spreadsheet",
        [
            ("Voornaam", "first_name", ()),
            ("Achternaam", "last_name", ()),
            ("Bedrijfsnaam", "company_name", ()),
            ("E-mailadres", "email", ()),
            ("Website", "domain", ()),
            ("Land", "country", ()),
        ],
    ),
    (
        "Polish spreadsheet",
        [
            ("Imię", "first_name", ()),
            ("Nazwisko", "last_name", ()),
            ("Firma", "company_name", ()),
            ("Adres e-mail", "email", ()),
            ("Strona www", "domain", ()),
            ("Kraj", "country", ()),
        ],
    ),
    (
        "Swedish spreadsheet",
        [
            ("Förnamn", "first_name", ()),
            ("Efternamn", "last_name", ()),
            ("Företag", "company_name", ()),
            ("E-post", "email", ()),
            ("Webbplats", "domain", ()),
            ("Land", "country", ()),
        ],
    ),
    (
        "Japanese spreadsheet",
        [
            ("氏名", "full_name", ()),
            ("会社名", "company_name", ()),
            ("メールアドレス", "email", ()),
            ("ウェブサイト", "domain", ()),
            ("国", "country", ()),
        ],
    ),
    (
        "headers that say nothing, values that do",
        [
            ("Column A", None, PEOPLE),
            ("Column B", "email", ("ada@acme.com", "grace@globex.com", "alan@initech.io")),
            ("Column C", "domain", ("acme.com", "https://globex.com", "www.initech.io")),
            ("Column D", "linkedin_url", LINKEDIN),
        ],
    ),
]


def _infos(headers: list[tuple[str, str | None, tuple[str, ...]]]) -> list[ColumnInfo]:
    return [ColumnInfo(i + 1, name, "text", samples) for i, (name, _, samples) in enumerate(headers)]


def test_there_are_at_least_thirty_header_sets():
    assert len(HEADER_SETS) >= 30


@pytest.mark.parametrize(("source", "headers"), HEADER_SETS, ids=[s for s, _ in HEADER_SETS])
def test_roles_of_real_exports(source, headers):
    roles = mapping.detect_roles(_infos(headers))
    found = {name: roles.get(i + 1) for i, (name, _, _) in enumerate(headers)}
    expected = {name: role for name, role, _ in headers}
    assert found == expected, source


@pytest.mark.parametrize(("source", "headers"), HEADER_SETS, ids=[s for s, _ in HEADER_SETS])
def test_a_persons_name_is_never_a_company_name(source, headers):
    infos = _infos(headers)
    roles = mapping.detect_roles(infos)
    person = {i + 1 for i, (_, role, _) in enumerate(headers) if role in ("full_name", "first_name", "last_name")}
    inputs = [("organization_name", "text"), ("first_name", "name"), ("last_name", "name"), ("domain", "domain")]
    for resolved in mapping.resolve_inputs(inputs, roles):
        if resolved.input == "organization_name":
            assert resolved.column_id not in person, source


def test_column_types_name_roles_the_header_does_not():
    roles = mapping.detect_roles(
        [ColumnInfo(1, "Contact point", "email"), ColumnInfo(2, "Where", "domain"), ColumnInfo(3, "Score", "number")]
    )
    assert roles == {1: "email", 2: "domain"}


def test_the_work_email_inputs_come_from_a_full_name_and_a_domain():
    roles = mapping.detect_roles([ColumnInfo(7, "Name", "text", PEOPLE), ColumnInfo(8, "Company domain", "domain")])
    inputs = [("domain", "domain"), ("first_name", "name"), ("last_name", "name"), ("organization_name", "text")]
    resolved = {r.input: r for r in mapping.resolve_inputs(inputs, roles)}
    assert (resolved["domain"].column_id, resolved["domain"].derive) == (8, None)
    assert (resolved["first_name"].column_id, resolved["first_name"].derive) == (7, "first_name")
    assert (resolved["last_name"].column_id, resolved["last_name"].derive) == (7, "last_name")
    assert resolved["organization_name"].column_id is None


def test_a_domain_is_derived_from_an_email_when_there_is_no_domain_column():
    roles = mapping.detect_roles([ColumnInfo(1, "Email", "email")])
    (resolved,) = mapping.resolve_inputs([("domain", "domain")], roles)
    assert (resolved.column_id, resolved.derive) == (1, "domain")
    assert mapping.derive_input("domain", "ada@mail.acme.co.uk") == "acme.co.uk"
    assert mapping.derive_input("domain", "https://www.globex.com/about") == "globex.com"


@pytest.mark.parametrize(
    ("full", "first", "last"),
    [
        ("Ada Lovelace", "Ada", "Lovelace"),
        ("  ada   lovelace ", "ada", "lovelace"),
        ("Lovelace, Ada", "Ada", "Lovelace"),
        ("Dr. Grace Brewster Hopper", "Grace", "Hopper"),
        ("Martin Luther King Jr.", "Martin", "King"),
        ("Jane Doe, PhD", "Jane", "Doe"),
        ("Ludwig van Beethoven", "Ludwig", "van Beethoven"),
        ("Ursula von der Leyen", "Ursula", "von der Leyen"),
        ("José María García", "José", "García"),
        ("Cher", "Cher", None),
        ("", None, None),
    ],
)
def test_first_and_last_names_from_a_full_name(full, first, last):
    assert mapping.derive_input("first_name", full) == (first if full else full)
    assert mapping.derive_input("last_name", full) == (last if full else full)


@settings(max_examples=200)
@given(st.lists(st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=12), min_size=1, max_size=5))
def test_split_parts_are_words_of_the_name(words):
    first, last = mapping.split_name(" ".join(words))
    assert first is not None
    assert first in words
    if last is not None:
        assert set(last.split()) <= set(words)
        assert first != " ".join(words) or len(words) == 1
