"""Technology signatures: what a page's scripts, generator tag, globals and markup reveal."""

from __future__ import annotations

from typing import Any

# name → (script URL fragments, generator prefixes, window globals, DOM markers)
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "WordPress": (("wp-content", "wp-includes"), ("wordpress",), ("wp",), ("wordpress",)),
    "Shopify": (("cdn.shopify.com",), ("shopify",), ("Shopify",), ("shopify",)),
    "Webflow": (("webflow",), ("webflow",), ("Webflow",), ()),
    "Squarespace": (("squarespace",), ("squarespace",), ("Squarespace",), ()),
    "Wix": (("wixstatic", "parastorage"), ("wix.com",), (), ()),
    "React": (("react.production", "react-dom"), (), ("React",), ("reactRoot",)),
    # Not ``window.next`` alone: carousels and routers of every kind use that name too.
    "Next.js": (("/_next/",), ("next.js",), ("__NEXT_DATA__", "__next_f"), ()),
    "Vue.js": (("vue.global", "vue.min.js", "vue.runtime"), (), ("Vue",), ("vueApp",)),
    "Nuxt": (("/_nuxt/",), (), ("__NUXT__",), ()),
    "Angular": (("angular",), (), ("angular", "ng"), ()),
    "jQuery": (("jquery",), (), ("jQuery",), ()),
    "Bootstrap": (("bootstrap",), (), (), ("bootstrap",)),
    "Tailwind CSS": (("tailwind",), (), (), ("tailwind",)),
    "Google Tag Manager": (("googletagmanager.com/gtm",), (), ("dataLayer",), ("gtm",)),
    "Google Analytics": (("google-analytics.com", "googletagmanager.com/gtag"), (), ("ga", "gtag"), ()),
    "HubSpot": (("hs-scripts.com", "hubspot", "hs-analytics"), (), ("_hsq", "HubSpotConversations"), ("hubspot",)),
    "Intercom": (("intercom",), (), ("Intercom",), ()),
    "Drift": (("drift.com", "js.driftt.com"), (), ("drift",), ()),
    "Segment": (("segment.com/analytics", "cdn.segment"), (), ("analytics",), ()),
    "Stripe": (("js.stripe.com",), (), ("Stripe",), ()),
    "Sentry": (("sentry",), (), ("Sentry",), ()),
    "Calendly": (("calendly",), (), ("Calendly",), ()),
    "Cloudflare": (("cloudflare", "cdnjs.cloudflare.com"), (), (), ()),
}


def detect(snapshot: dict[str, Any]) -> list[str]:
    """Return the technologies the snapshot shows, sorted."""
    scripts = " ".join(snapshot.get("scripts") or []).lower()
    generator = (snapshot.get("generator") or "").lower()
    globals_ = snapshot.get("globals") or {}
    markers = snapshot.get("markers") or {}
    found = set()
    for name, (urls, generators, names, marks) in SIGNATURES.items():
        if (
            any(u in scripts for u in urls)
            or any(generator.startswith(g) for g in generators)
            or any(globals_.get(n) for n in names)
            or any(markers.get(m) for m in marks)
        ):
            found.add(name)
    return sorted(found)
