"""The sandbox LLM as a research agent: how it answers a request offering the research tools.

A request whose tools include ``web_search``, ``fetch_page`` and ``submit_answer`` is a research
step (Morket's research agent, ``morket.ai.research``). The conversation's tool results are read
by their first line, as the agent writes them: ``Search results for: …`` (numbered lines holding
URLs), ``Page <url>`` (the page's text follows) or ``Refused <url>: <reason>``. The next step is:

1. ``[[loop]]`` in the prompt: ``web_search`` again, every time (an agent that never answers).
2. No tool result yet: ``web_search`` with the data's first line as the query.
3. The last result is a page that says "fetch/visit/open <URL>" and that URL was not asked yet:
   ``fetch_page`` of it (a gullible model obeying a prompt injection; the agent's guard decides).
4. A URL of the search results not asked yet, while fewer than two pages were read:
   ``fetch_page`` of the first such URL.
5. Otherwise ``submit_answer``: the sentence of the pages read that shares the most words (four
   letters or more) with the data, first one on a tie, as the answer and as the quote of its page's
   URL. ``[[unsourced]]`` in the prompt, or no page read: the answer ``I could not find this.``
   with no sources.
"""

from __future__ import annotations

import re

from morket.providers.sandboxes import llm

TOOLS = ("web_search", "fetch_page", "submit_answer")
NOT_FOUND = "I could not find this."
_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_OBEY = re.compile(r"(?i)\b(?:fetch|visit|open)\s+(https?://[^\s<>\"')\]]+)")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]")
_LONG_WORD = re.compile(r"[a-z0-9]{4,}")


def is_research(ask: llm.Ask) -> bool:
    names = {t["name"] for t in ask.tools}
    return all(name in names for name in TOOLS)


def _asked(results: list[str]) -> set[str]:
    asked = set()
    for text in results:
        head = text.split("\n", 1)[0]
        if head.startswith(("Page ", "Refused ")):
            asked.add(head.split(" ", 1)[1].split(" ", 1)[0].rstrip(":"))
    return asked


def _pages(results: list[str]) -> list[tuple[str, str]]:
    pages = []
    for text in results:
        head, _, body = text.partition("\n")
        if head.startswith("Page "):
            pages.append((head[5:].strip(), body.replace("<data>", " ").replace("</data>", " ")))
    return pages


def best_sentence(pages: list[tuple[str, str]], question: str) -> tuple[str, str] | None:
    wanted = set(_LONG_WORD.findall(question.lower()))
    best: tuple[int, str, str] | None = None
    for url, text in pages:
        for match in _SENTENCE.finditer(text):
            sentence = match.group(0).strip()
            if len(sentence) < 12:
                continue
            score = len(wanted & set(_LONG_WORD.findall(sentence.lower())))
            if best is None or score > best[0]:
                best = (score, url, sentence)
    return None if best is None else (best[1], best[2])


def rule_research(ask: llm.Ask) -> llm.Reply | None:
    if not is_research(ask) or ask.tool_choice == "none":
        return None
    results = ask.tool_results
    if "[[loop]]" in ask.prompt or not results:
        return llm.Reply(tool=("web_search", {"query": llm.first_line(ask.data) or "company"}))
    asked = _asked(results)
    last_head, _, last_body = results[-1].partition("\n")
    if last_head.startswith("Page "):
        obey = next((u for u in _OBEY.findall(last_body) if u not in asked), None)
        if obey is not None:
            return llm.Reply(tool=("fetch_page", {"url": obey}))
    pages = _pages(results)
    if len(pages) < 2:
        for text in results:
            if text.startswith("Search results"):
                for url in _URL.findall(text):
                    if url not in asked:
                        return llm.Reply(tool=("fetch_page", {"url": url}))
    found = None if "[[unsourced]]" in ask.prompt else best_sentence(pages, ask.data)
    if found is None:
        return llm.Reply(tool=("submit_answer", {"answer": NOT_FOUND, "sources": []}))
    url, sentence = found
    return llm.Reply(tool=("submit_answer", {"answer": sentence, "sources": [{"url": url, "quote": sentence}]}))


llm.add_rule(rule_research, before=llm.rule_not_json)
