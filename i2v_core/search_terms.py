"""Search terms: how `GET /v1/videos?q=` finds jobs through an index, the same on SQLite and
PostgreSQL.

A job's instruction and English prompt are cut into terms stored beside the job. Words of
scripts written with spaces are terms of their own, and a query word matches them by prefix
("rot" finds "rotating"). Chinese and Japanese text has no spaces, so every character and every
pair of adjacent characters is a term, and a query word finds the jobs holding all of its pairs.
Terms are stored as UTF-8 bytes: byte order is the same in both databases, so a prefix is an
index range (UTF-8 never contains 0xFF, which bounds it). The terms only narrow the candidates;
the query still checks that each word occurs in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TERM_BYTES = 64
# Kana, CJK ideographs (with extension A and compatibility ideographs), Hangul syllables.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKENS = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")


@dataclass(frozen=True)
class QueryTerm:
    term: bytes
    prefix: bool  # match terms starting with `term`, not only `term` itself

    @property
    def upper_bound(self) -> bytes:
        return self.term + b"\xff"


def _encode(text: str) -> bytes:
    return text.encode()[:MAX_TERM_BYTES].decode(errors="ignore").encode()


def _is_cjk(token: str) -> bool:
    return _CJK_CHAR.match(token) is not None


def _cjk_terms(token: str) -> set[str]:
    pairs = {token[i : i + 2] for i in range(len(token) - 1)}
    return pairs or {token}


def document_terms(*texts: str) -> set[bytes]:
    """The terms a job is found by."""
    terms: set[bytes] = set()
    for text in texts:
        for token in _TOKENS.findall(text.lower()):
            if _is_cjk(token):
                terms.update(_encode(t) for t in (*token, *_cjk_terms(token)))
            else:
                terms.add(_encode(token))
    return terms


def query_terms(word: str) -> list[QueryTerm]:
    """The terms a job must hold for `word` to occur in its text (all of them)."""
    found: dict[QueryTerm, None] = {}
    for token in _TOKENS.findall(word.lower()):
        if _is_cjk(token):
            for term in sorted(_cjk_terms(token)):
                found[QueryTerm(_encode(term), prefix=False)] = None
        else:
            found[QueryTerm(_encode(token), prefix=True)] = None
    return list(found)
