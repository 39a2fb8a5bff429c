"""A question's wording matched to a source's name or description, by crude word stems.

Enough to tell "find the lyrics" from `get_song_lyrics`, or to see that "can I still return it?"
uses a word of "the store's return, exchange and cancellation policy": a stem is a word without
a plural `s`, cut to six letters ("cancel" for cancelled and cancellation).
"""

from __future__ import annotations

import re

from bm25s.stopwords import STOPWORDS_EN_PLUS

_WORD = re.compile(r"[a-z0-9]+")


def stems(text: str) -> list[str]:
    """The stems of the words of `text` (a source name's underscores separate words), in order."""
    return [_stem(w) for w in _WORD.findall(text.casefold().replace("_", " "))]


def content_stems(text: str) -> set[str]:
    """The stems of `text`'s words that carry meaning: no stopwords, no words under four letters."""
    return {_stem(w) for w in _WORD.findall(text.casefold()) if len(w) >= 4 and w not in STOPWORDS_EN_PLUS}


def _stem(word: str) -> str:
    return word.removesuffix("s")[:6]
