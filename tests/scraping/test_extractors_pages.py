"""Extractors on small pages modelled on real company sites, read through the browser and its snapshot.

Each page reproduces something seen on a saved real page: a "Join us on Facebook" button with
``href="#"``, a Facebook icon in the header next to the real logo, an address block followed by
a person's name and a paragraph, a slider library that sets ``window.next``, and meta tags with
``javascript:`` and relative URLs.
"""

from __future__ import annotations

import pytest

from morket.scraping.extractors import get_extractor
from morket.scraping.extractors.company import postal_lines
from morket.scraping.extractors.normalise import social_profile

HEAD = '<!doctype html><html lang="en-GB"><head><meta charset="utf-8"><title>Acme Widgets | Home</title>'

CAREERS_PAGE = (
    HEAD
    + """</head><body>
<section class="community"><h2>Stay in touch</h2>
  <a class="btn" href="#">Join us on Facebook</a>
  <a class="btn" href="javascript:void(0)">Join us at our stand</a>
</section>
<footer><a href="/about">About</a> <a href="/work-here/">Work with us</a></footer>
</body></html>"""
)

LOGO_PAGE = (
    HEAD
    + """</head><body>
<header>
  <div class="topbar">
    <a href="https://www.facebook.com/acmewidgets">
      <img src="/img/facebook.png" class="social-logo" alt="Facebook logo"></a>
    <a href="https://twitter.com/acmewidgets"><img src="/img/x.svg" class="social-logo" alt="X"></a>
  </div>
  <a class="brand" href="/"><img src="/img/acme-widgets.svg" alt="Acme Widgets"></a>
</header>
<main><h2>Trusted by</h2>
  <a href="https://globex.example/"><img src="/img/customers/globex-logo.png" alt="Globex logo"></a>
</main></body></html>"""
)

ADDRESS_PAGE = (
    HEAD
    + """</head><body><main><h1>Contact</h1></main>
<footer><div class="address">
  <p>Acme Widgets Ltd<br>12 Harbour Road<br>Bristol BS1 5TT<br>United Kingdom</p>
  <p>Jane Smith</p>
  <p>Tel: <a href="tel:+441174960000">0117 496 0000</a></p>
  <p>Since 1998 Acme Widgets has designed and built precision widgets for manufacturers across
  Europe. Our engineering team of 45 works from the Bristol workshop, and every widget we ship is
  tested by hand before it leaves the building. We believe that a widget should last a lifetime,
  so we offer repairs for every model we have ever made, including the very first ones from the
  nineties. Ask about our apprenticeship programme, our open days and our sustainability report,
  which sets out how we reduced our energy use by a third in five years.</p>
</div></footer></body></html>"""
)

HIDDEN_ADDRESS_PAGE = (
    HEAD
    + """<style>.drawer { display: none }</style></head><body>
<nav class="drawer">
  <address>Acme GmbH<br>Musterstraße 5<br>10115 Berlin<br>Deutschland<br>Max Mustermann</address>
</nav>
</body></html>"""
)

MICRODATA_PAGE = (
    HEAD
    + """</head><body><footer>
<div itemprop="address" itemscope itemtype="https://schema.org/PostalAddress">
  <span itemprop="streetAddress">1 Market St, Suite 300</span>,
  <span itemprop="addressLocality">San Francisco</span>, <span itemprop="addressRegion">CA</span>
  <span itemprop="postalCode">94105</span>
  <p>Ask for Ada Lovelace</p>
</div></footer></body></html>"""
)

NEXT_GLOBAL_PAGE = (
    HEAD
    + """<script>window.next = {slide: function () {}};</script></head>
<body><div class="slider"><button onclick="next.slide()">›</button></div></body></html>"""
)

NEXT_APP_PAGE = (
    HEAD
    + """<script>self.__next_f = self.__next_f || []; self.__next_f.push([0]);</script></head>
<body><div id="root"><h1>Acme</h1></div></body></html>"""
)

META_PAGE = (
    HEAD
    + """
<meta property="og:image" content="javascript:alert(document.cookie)">
<meta property="og:url" content="/about">
<meta name="twitter:image" content="//cdn.acme.test/share.png">
<meta name="description" content="Widgets for everyone.">
<meta name="x-action" content="javascript:alert(1)">
<script type="application/ld+json">{"@type": "Organization", "name": "Acme Widgets",
  "sameAs": ["javascript://www.facebook.com/acme", "https://www.linkedin.com/company/acme-widgets/"]}</script>
</head><body>
<a href="javascript:alert(1)">Click</a> <a href="/pricing#plans">Pricing</a> <a href="data:text/html,hi">Data</a>
</body></html>"""
)

SHARE_IMAGE_PAGE = (
    HEAD
    + """<meta property="og:image" content="/img/share.png"></head>
<body><h1>Acme Widgets</h1></body></html>"""
)


@pytest.fixture
def read(scraper, sites):
    """``read(html, extractor)``: serve ``html`` as www.acme-widgets.test's home page and extract it."""

    def _read(html: str, extractor: str = "company", path: str = "/") -> dict:
        url = sites.serve("www.acme-widgets.test", path, html)
        outcome = scraper.scrape(url, extractor)
        assert outcome.ok, outcome.message
        return outcome.data

    return _read


def test_a_button_that_links_nowhere_is_not_the_careers_page(read, sites):
    data = read(CAREERS_PAGE)
    assert data["careers_url"] == sites.url("www.acme-widgets.test", "/work-here/")


def test_no_careers_page_rather_than_the_page_itself(read):
    page = CAREERS_PAGE.replace('<a href="/work-here/">Work with us</a>', "")
    assert read(page)["careers_url"] == ""


def test_a_social_icon_in_the_header_is_not_the_logo(read, sites):
    assert read(LOGO_PAGE)["logo"] == sites.url("www.acme-widgets.test", "/img/acme-widgets.svg")


def test_customer_logos_are_not_the_logo(read, sites):
    page = LOGO_PAGE.replace('<a class="brand" href="/"><img src="/img/acme-widgets.svg" alt="Acme Widgets"></a>', "")
    page = page.replace("</title>", '</title><meta property="og:image" content="/img/share.png">')
    assert read(page)["logo"] == sites.url("www.acme-widgets.test", "/img/share.png")


def test_address_stops_before_the_name_and_the_paragraph(read):
    assert read(ADDRESS_PAGE)["address"] == "Acme Widgets Ltd, 12 Harbour Road, Bristol BS1 5TT, United Kingdom"


def test_address_in_a_hidden_drawer_keeps_its_lines_apart(read):
    assert read(HIDDEN_ADDRESS_PAGE)["address"] == "Acme GmbH, Musterstraße 5, 10115 Berlin, Deutschland"


def test_address_marked_up_with_microdata(read):
    assert read(MICRODATA_PAGE)["address"] == "1 Market St, Suite 300, San Francisco, CA, 94105"


def test_window_next_alone_is_not_nextjs(read):
    assert "Next.js" not in read(NEXT_GLOBAL_PAGE)["technologies"]
    assert "Next.js" in read(NEXT_APP_PAGE)["technologies"]


def test_generic_returns_only_absolute_http_urls(read, sites):
    data = read(META_PAGE, "generic")
    assert "og:image" not in data["meta"]
    assert "x-action" not in data["meta"]
    assert data["meta"]["og:url"] == sites.url("www.acme-widgets.test", "/about")
    assert data["meta"]["twitter:image"] == "http://cdn.acme.test/share.png"
    assert data["meta"]["description"] == "Widgets for everyone."
    assert [link["url"] for link in data["links"]] == [sites.url("www.acme-widgets.test", "/pricing")]
    assert "javascript" not in str(data).lower()


def test_company_socials_and_logo_from_relative_or_script_urls(read, sites):
    assert read(META_PAGE)["socials"] == {"linkedin": "https://www.linkedin.com/company/acme-widgets"}
    assert read(SHARE_IMAGE_PAGE)["logo"] == sites.url("www.acme-widgets.test", "/img/share.png")


def test_generic_on_a_snapshot_resolves_against_the_page():
    snapshot = {
        "url": "https://www.acme.co.uk/about/",
        "metas": [
            ["og:image", "javascript:alert(1)"],
            ["og:image:secure_url", " java\tscript:alert(1)"],
            ["twitter:image", "img/card.png"],
        ],
        "links": [{"href": "JavaScript:alert(1)", "text": "x"}, {"href": "../team", "text": "Team"}],
    }
    data = get_extractor("generic").extract(snapshot)
    assert data["meta"] == {"twitter:image": "https://www.acme.co.uk/about/img/card.png"}
    assert data["links"] == [{"url": "https://www.acme.co.uk/team", "text": "Team"}]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["Address: 1 Market St", "Suite 300", "San Francisco, CA 94105", "USA", "Contact: Ada Lovelace"],
            ["1 Market St", "Suite 300", "San Francisco, CA 94105", "USA"],
        ),
        (["Harbour House", "Bristol", "United Kingdom", "Jane Smith"], ["Harbour House", "Bristol", "United Kingdom"]),
        (["12 Harbour Road, Bristol", "jane@acme.co.uk", "+44 117 496 0000"], ["12 Harbour Road, Bristol"]),
        (["Harbour House, Bristol"], ["Harbour House, Bristol"]),
        (["Jane Smith", "Head of Sales"], []),
    ],
)
def test_postal_lines(lines, expected):
    assert postal_lines(lines) == expected


def test_social_profiles_are_http_only():
    assert social_profile("javascript://www.facebook.com/acme") is None
    assert social_profile("https://www.facebook.com/acme")[2] == "https://www.facebook.com/acme"
