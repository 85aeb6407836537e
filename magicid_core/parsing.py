"""Parsing of the short texts typed into node widgets ("0, 2, -1")."""

from __future__ import annotations


def parse_number_list(text: str, kind=float, what: str = "values") -> list | None:
    """"0, 2, -1" -> [0, 2, -1]; blank -> None (the automatic choice)."""
    text = (text or "").replace(";", ",").strip()
    if not text:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, got {text!r}") from None
