"""Language detection and word counts for enrichment: offline, deterministic, pure functions.

Split out of :mod:`docworkers.ingest.enrich`, which re-exports the public names.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["APOSTROPHES", "SAMPLE_CHARS", "count_words", "detect_language"]

SAMPLE_CHARS = 20_000  # language detection and document keywords read at most this much

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
APOSTROPHES = "'\u2019"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+(?:[{APOSTROPHES}-][^\W{_CJK}]+)*")


def count_words(text: str) -> int:
    """Runs of letters and digits; each Chinese or Japanese character counts as one word."""
    return sum(1 for _ in _WORD.finditer(text))


# Frequent function words; words shared by several lists count for each in proportion.
_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to is are was were be been that this it for on with as by at from "
        "or an not which have has had they their there we you he she his her its but can "
        "will would should into who what when if all one",
        "de": "der die das und ist sind nicht ein eine einen einem einer des dem den zu mit "
        "sich auf für von im auch es als an wie nach bei aus wird werden wurde ihre ihr sie "
        "wir er noch nur oder aber dass über alle",
        "fr": "le la les et des est une un du en dans que qui pour pas sur au aux avec ce "
        "cette ils elle elles sont par plus ne se son sa ses leur leurs être ont été nous "
        "vous doivent autres",
        "es": "el la los las y de del que en es un una por con para se su sus al lo como más "
        "pero no ha han este esta son está están ser fue otros",
        "it": "il lo la gli le e di del della dei delle che è un una per con non sono si da al "
        "alla nel nella ed questo questa essi anche ma come altri",
        "nl": "de het een en van is zijn niet dat die in op te met voor aan als er ook bij "
        "zich door naar wordt worden zij hij ze maar om dit deze alle",
        "pt": "o a os as e de do da dos das que em um uma por para com não é são se seu sua "
        "no na nos nas ao aos pelo pela mais como outros",
    }.items()
}
_LANGUAGES_OF: dict[str, tuple[str, ...]] = {}
for _lang, _words in _STOPWORDS.items():
    for _word in _words:
        _LANGUAGES_OF[_word] = (*_LANGUAGES_OF.get(_word, ()), _lang)
_LATIN_WORD = re.compile(r"[^\W\d_]+")

# Letters beyond Russian's. Belarusian shares Ukrainian's dotted i, so its short u is tested
# first; Macedonian shares most of Serbian's extra letters, so its own three are tested first.
_UKRAINIAN, _BELARUSIAN = set("іїєґ"), set("ў")
_SERBIAN, _MACEDONIAN = set("ђћџљњј"), set("ѓќѕ")
_RUSSIAN = set("абвгдеёжзийклмнопрстуфхцчшщъыьэюя")
_KNOWN_CYRILLIC = _RUSSIAN | _UKRAINIAN | _BELARUSIAN | _SERBIAN | _MACEDONIAN


def _script(ch: str) -> str:
    code = ord(ch)
    if code < 0x250:
        return "latin"
    for start, end, name in _SCRIPT_RANGES:
        if start <= code <= end:
            return name
    return "other"


_SCRIPT_RANGES = (
    (0x0370, 0x03FF, "greek"), (0x1F00, 0x1FFF, "greek"), (0x0400, 0x052F, "cyrillic"),
    (0x0590, 0x05FF, "hebrew"), (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"),
    (0x08A0, 0x08FF, "arabic"), (0xFB50, 0xFDFF, "arabic"), (0xFE70, 0xFEFF, "arabic"),
    (0x0E00, 0x0E7F, "thai"), (0x3040, 0x30FF, "kana"), (0x31F0, 0x31FF, "kana"),
    (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"),
    (0x1100, 0x11FF, "hangul"), (0x3130, 0x318F, "hangul"), (0xAC00, 0xD7AF, "hangul"),
)  # fmt: skip
_SCRIPT_LANGUAGE = {"greek": "el", "hebrew": "he", "arabic": "ar", "thai": "th", "hangul": "ko"}


def detect_language(text: str) -> str:
    """The ISO 639-1 code of ``text``'s language, or ``"und"`` when unsure.

    Letters in a non-Latin script decide by script (Arabic, Hebrew, Greek, Thai, Korean, Chinese
    vs Japanese by kana; ru, uk, be, bg, sr, mk by their letters). Latin text is
    scored by function words of en, de, fr, es, it, nl and pt; anything else is "und".
    """
    sample = _sample(text)
    scripts = Counter(_script(ch) for ch in sample if ch.isalpha())
    letters = sum(scripts.values())
    if letters == 0:
        return "und"
    script, count = max(scripts.items(), key=lambda item: (item[1], item[0]))
    if script == "han" or script == "kana":
        cjk = scripts["han"] + scripts["kana"]
        if cjk >= 0.3 * letters:
            return "ja" if scripts["kana"] >= 0.05 * cjk else "zh"
    elif script in _SCRIPT_LANGUAGE and count >= 0.3 * letters:
        return _SCRIPT_LANGUAGE[script]
    elif script == "cyrillic" and count >= 0.3 * letters:
        return _cyrillic_language(sample, count)
    if scripts["latin"] < 0.5 * letters:
        return "und"
    return _latin_language(sample)


def _cyrillic_language(sample: str, letters: int) -> str:
    found = Counter(ch for ch in sample.lower() if "\u0400" <= ch <= "\u052f" and ch.isalpha())
    foreign = sum(n for ch, n in found.items() if ch not in _KNOWN_CYRILLIC)
    if foreign > 0.02 * letters:
        return "und"  # another Cyrillic language (Kazakh, Abkhaz ...)
    for language, marks in (("be", _BELARUSIAN), ("mk", _MACEDONIAN), ("sr", _SERBIAN)):
        if sum(found[ch] for ch in marks) > 0.005 * letters:
            return language
    if sum(found[ch] for ch in _UKRAINIAN) > 0.005 * letters:
        return "uk"
    if found["ы"] + found["э"] == 0 and found["ъ"] > 0.005 * letters:
        return "bg"  # Bulgarian has no ы or э but a frequent ъ
    return "ru"


def _latin_language(sample: str) -> str:
    """The language whose function words dominate: they must make up at least a fifth of the
    words, include four different ones, and outscore the runner-up by half again (or, in
    longer text diluted by names and markup: a twelfth, six different, three times). Tuned on
    the UDHR's first article in ~500 languages: unsupported languages come out "und" except
    close relatives (Afrikaans -> nl, Asturian -> es, Scots -> en)."""
    words = _LATIN_WORD.findall(sample.lower())
    scores: dict[str, float] = {}
    distinct: dict[str, set[str]] = {}
    for word in words:
        languages = _LANGUAGES_OF.get(word, ())
        for language in languages:
            # shared words count in proportion; one-letter words ("a", "e", "o") half again
            weight = (0.5 if len(word) == 1 else 1.0) / len(languages)
            scores[language] = scores.get(language, 0.0) + weight
            distinct.setdefault(language, set()).add(word)
    if not scores:
        return "und"
    (best, first), *rest = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    second = rest[0][1] if rest else 0.0
    kinds, share = len(distinct[best]), first / len(words)
    if kinds >= 4 and share >= 0.2 and first >= 1.5 * second:
        return best
    if kinds >= 6 and share >= 0.08 and first >= 3 * second:
        return best  # long text diluted by names, numbers and markup, but unambiguous
    return "und"


def _sample(text: str) -> str:
    """The start, middle and end of a long text: detection must not read a whole book."""
    if len(text) <= SAMPLE_CHARS:
        return text
    third = SAMPLE_CHARS // 3
    middle = len(text) // 2
    return "\n".join((text[:third], text[middle : middle + third], text[-third:]))
