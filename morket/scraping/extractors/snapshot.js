async (idleMs) => {
  // Wait (briefly) for fetch/XHR calls the page's scripts still have open: content they render.
  const until = Date.now() + (idleMs || 0);
  while ((window.__morketPending || 0) > 0 && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const MAX_TEXT = 100000;
  const abs = (u) => { try { return new URL(u, document.baseURI).href; } catch (e) { return null; } };
  const clip = (s, n) => (s || '').replace(/\s+/g, ' ').trim().slice(0, n);
  const metas = [];
  for (const m of document.querySelectorAll('meta')) {
    const key = m.getAttribute('name') || m.getAttribute('property') || m.getAttribute('itemprop') || m.getAttribute('http-equiv');
    const content = m.getAttribute('content');
    if (key && content) metas.push([key.toLowerCase(), clip(content, 2000)]);
    if (metas.length > 300) break;
  }
  const links = [];
  for (const a of document.querySelectorAll('a[href]')) {
    const href = abs(a.getAttribute('href'));
    if (href) links.push({href, text: clip(a.innerText || a.getAttribute('aria-label') || a.title, 200)});
    if (links.length > 1000) break;
  }
  const icons = [];
  for (const l of document.querySelectorAll('link[rel~="icon"], link[rel="apple-touch-icon"]')) {
    const href = abs(l.getAttribute('href')); if (href) icons.push(href);
  }
  // Logo candidates: images that say "logo" (in their own or their link's names) or link to a
  // home page. Which one is the site's own logo is decided in Python (company.py).
  const images = [];
  for (const img of document.querySelectorAll('img')) {
    const link = img.closest('a[href]');
    const href = link ? abs(link.getAttribute('href')) : null;
    const hint = [img.id, img.className, img.alt, img.title, img.getAttribute('src'),
      link ? [link.id, link.className, link.title, link.getAttribute('aria-label')].join(' ') : ''].join(' ');
    let toHome = false;
    try { toHome = !!href && new URL(href).pathname === '/'; } catch (e) {}
    if (!hint.toLowerCase().includes('logo') && !toHome) continue;
    const src = abs(img.getAttribute('src'));
    if (src) images.push({src, hint: clip(hint, 500), link: href || '', header: !!img.closest('header, nav, [role="banner"]')});
    if (images.length > 20) break;
  }
  const jsonld = [];
  for (const s of document.querySelectorAll('script[type="application/ld+json"]')) {
    try { jsonld.push(JSON.parse(s.textContent)); } catch (e) {}
    if (jsonld.length > 20) break;
  }
  const scripts = [];
  for (const s of document.querySelectorAll('script[src]')) { const src = abs(s.getAttribute('src')); if (src) scripts.push(src); }
  const people = [];
  const personNodes = document.querySelectorAll('[itemtype*="schema.org/Person"], .team-member, .person, [data-person], .member, .staff');
  for (const el of personNodes) {
    const pick = (sel) => { const n = el.querySelector(sel); return n ? clip(n.innerText || n.getAttribute('content'), 200) : ''; };
    const name = pick('[itemprop="name"]') || pick('.name') || pick('h3') || pick('h4') || pick('h2') || pick('strong');
    const title = pick('[itemprop="jobTitle"]') || pick('.title') || pick('.role') || pick('.position') || pick('p');
    const a = el.querySelector('a[href*="linkedin.com"]');
    if (name) people.push({name, title, linkedin: a ? abs(a.getAttribute('href')) : ''});
    if (people.length > 200) break;
  }
  // Addresses as their lines (a <br> or a block element ends a line, whether or not the block
  // is on screen: innerText of a hidden element runs its lines together), plus any schema.org
  // parts they mark up.
  const linesOf = (root) => {
    const lines = [''];
    const walk = (node) => {
      for (const child of node.childNodes) {
        if (child.nodeType === Node.TEXT_NODE) { lines[lines.length - 1] += child.nodeValue; continue; }
        if (child.nodeType !== Node.ELEMENT_NODE || ['SCRIPT', 'STYLE', 'TEMPLATE', 'NOSCRIPT'].includes(child.tagName)) continue;
        const display = getComputedStyle(child).display;
        if (display === 'none') continue;
        const block = child.tagName === 'BR' || !(display.startsWith('inline') || display === 'contents');
        if (block) lines.push('');
        walk(child);
        if (block) lines.push('');
      }
    };
    walk(root);
    return lines.map((line) => clip(line, 300)).filter(Boolean).slice(0, 20);
  };
  const addresses = [];
  for (const el of document.querySelectorAll('address, [itemprop="address"], .address')) {
    const parts = {};
    for (const key of ['streetAddress', 'addressLocality', 'addressRegion', 'postalCode', 'addressCountry']) {
      const node = el.querySelector(`[itemprop="${key}"]`);
      if (node) parts[key] = clip(node.getAttribute('content') || node.textContent, 200);
    }
    addresses.push({lines: linesOf(el), parts}); if (addresses.length > 5) break;
  }
  const tel = [];
  for (const a of document.querySelectorAll('a[href^="tel:"]')) { tel.push(a.getAttribute('href').slice(4)); if (tel.length > 20) break; }
  const globals = {};
  for (const g of ['React', 'jQuery', 'Vue', 'angular', 'ng', 'Shopify', 'wp', 'dataLayer', 'ga', 'gtag', 'Intercom', 'HubSpotConversations', '_hsq', 'analytics', 'Stripe', 'Sentry', '__NEXT_DATA__', '__next_f', '__NUXT__', 'Webflow', 'Squarespace', 'drift', 'Calendly']) {
    try { if (typeof window[g] !== 'undefined') globals[g] = true; } catch (e) {}
  }
  const html = document.documentElement;
  return {
    url: location.href,
    title: clip(document.title, 500),
    lang: html.getAttribute('lang') || '',
    metas, links, icons, images, jsonld, scripts, people, addresses, tel, globals,
    generator: (document.querySelector('meta[name="generator"]') || {}).content || '',
    headings: Array.from(document.querySelectorAll('h1, h2')).slice(0, 30).map((h) => clip(h.innerText, 300)).filter(Boolean),
    text: (document.body ? document.body.innerText : '').slice(0, MAX_TEXT),
    markers: {
      reactRoot: !!document.querySelector('[data-reactroot], #__next'),
      vueApp: !!document.querySelector('[data-v-app], [data-server-rendered]'),
      wordpress: !!document.querySelector('link[href*="wp-content"], script[src*="wp-content"], script[src*="wp-includes"]'),
      shopify: !!document.querySelector('script[src*="cdn.shopify.com"]'),
      hubspot: !!document.querySelector('script[src*="hs-scripts.com"], script[src*="hubspot"]'),
      gtm: !!document.querySelector('script[src*="googletagmanager.com"]'),
      tailwind: !!document.querySelector('[class*="tw-"], link[href*="tailwind"]'),
      bootstrap: !!document.querySelector('link[href*="bootstrap"], script[src*="bootstrap"]'),
    },
  };
}
