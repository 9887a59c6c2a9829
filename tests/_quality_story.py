"""The source story as data: invoice prompts with DD/MM/YYYY dates and extraction outputs in ISO.

Before the silent model update the outputs carry the right dates, except for a small base rate of
ordinary mistakes (a due date the model made up); after it, day and month come back swapped whenever
the swap is a valid date (day <= 12): those outputs look plausible and only a date check sees them.
Deterministic for a given `random.Random`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

SYSTEM = (
    "You extract invoice fields. Return JSON with invoice_number, supplier, issue_date and due_date in ISO "
    "format (YYYY-MM-DD), currency, items, vat and total."
)
SUPPLIERS = ("ACME Supplies Ltd", "Globex SARL", "Initech GmbH", "Umbrella BV", "Stark Industries SpA", "Wayne Enterprises SA")
ITEMS = ("widget", "gadget", "sprocket", "flange", "gasket", "bracket", "coupling")


@dataclass(frozen=True, slots=True)
class Call:
    prompt: str
    output: str
    affected: bool
    """After the model update (whether or not this output's dates could be swapped)."""
    broken: bool
    """This output is wrong (a transposed or invented date)."""


def _dmy(day: date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def _swap(day: date) -> date:
    return date(day.year, day.day, day.month) if day.day <= 12 else day


def invoice_call(rng: random.Random, *, transposed: bool, base_failure_rate: float = 0.0) -> Call:
    """One extraction call; the output is about 500 characters with two dates."""
    issue = date(2024, 1, 1) + timedelta(days=rng.randrange(0, 700))
    due = issue + timedelta(days=rng.choice((14, 30, 45, 60)))
    number = f"INV-{rng.randrange(10000, 99999)}"
    supplier = rng.choice(SUPPLIERS)
    lines = [(rng.choice(ITEMS), rng.randrange(1, 9), rng.randrange(500, 50000) / 100) for _ in range(2)]
    net = round(sum(q * p for _, q, p in lines), 2)
    vat = round(net * 0.2, 2)
    document = "\n".join(
        [
            f"INVOICE {number}",
            f"{supplier}, {rng.randrange(1, 99)} Rue de la Paix, 75002 Paris",
            f"Date of issue: {_dmy(issue)}",
            f"Payment due: {_dmy(due)}",
            *(f"{q} x {name} @ {p:.2f} EUR = {q * p:.2f} EUR" for name, q, p in lines),
            f"VAT 20%: {vat:.2f} EUR",
            f"Total: {net + vat:,.2f} EUR",
        ]
    )
    out_issue, out_due = (_swap(issue), _swap(due)) if transposed else (issue, due)
    invented = not transposed and rng.random() < base_failure_rate
    if invented:
        out_due = due + timedelta(days=rng.randrange(1, 5))
    output = json.dumps(
        {
            "invoice_number": number,
            "supplier": supplier,
            "issue_date": out_issue.isoformat(),
            "due_date": out_due.isoformat(),
            "currency": "EUR",
            "payment_terms": f"{(due - issue).days} days net, bank transfer",
            "items": [{"description": name, "quantity": q, "unit_price": p} for name, q, p in lines],
            "vat": vat,
            "total": round(net + vat, 2),
            "notes": "Payment by bank transfer to the account given on the invoice; quote the invoice number. "
            "Late payment interest applies.",
        }
    )
    broken = invented or (out_issue, out_due) != (issue, due)
    return Call(f"{SYSTEM}\n\n{document}", output, transposed, broken)


def story(seed: int, *, good: int, affected: int, base_failure_rate: float = 0.02) -> Iterator[Call]:
    """``good`` calls before the silent update, then ``affected`` after it."""
    rng = random.Random(seed)
    for index in range(good + affected):
        yield invoice_call(rng, transposed=index >= good, base_failure_rate=base_failure_rate)
