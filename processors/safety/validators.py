"""Checks run on a pattern's candidate match after the regex matched.

Why: a regex cannot do arithmetic. Thirteen to nineteen digits look like a card number, but only a
Luhn-valid sequence is one; without the check, order numbers and timestamps would flood the review
queue. Validators only run for patterns that matched (the clean path never reaches them).
"""

from __future__ import annotations

from collections.abc import Callable

Validator = Callable[[str], bool]


def _digits(candidate: str) -> str:
    return "".join(ch for ch in candidate if ch.isdigit())


def luhn(candidate: str) -> bool:
    """True when the digits of ``candidate`` (spaces and dashes ignored) are 13-19 long and pass Luhn."""
    digits = _digits(candidate)
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:  # 0000 0000 0000 0000 passes Luhn, but is no card
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# Lengths of IBANs by country (ISO 13616 registry); an unknown country is checked by mod-97 alone.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31,
    "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24,
    "XK": 20,
}


def iban(candidate: str) -> bool:
    """True when ``candidate`` (spaces ignored) is an IBAN with a valid mod-97 check (ISO 7064) and length."""
    text = "".join(candidate.split()).upper()
    if not 15 <= len(text) <= 34 or not text.isalnum() or not text.isascii():
        return False
    expected = _IBAN_LENGTHS.get(text[:2])
    if expected is not None and len(text) != expected:
        return False
    rearranged = text[4:] + text[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)  # A=10 ... Z=35
    return int(number) % 97 == 1


VALIDATORS: dict[str, Validator] = {"luhn": luhn, "iban": iban}
"""Validator names a pattern may use (``validator = "luhn"``)."""
