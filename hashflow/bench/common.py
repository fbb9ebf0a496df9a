"""Small pieces shared by the benchmark command lines: comma lists and progress bars."""

from __future__ import annotations

import argparse


def comma_list(text: str) -> tuple[str, ...]:
    """'a, b,c' -> ('a', 'b', 'c'); empty items are dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def comma_ints(text: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2); an argparse type with a clear error."""
    try:
        return tuple(int(item) for item in comma_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def progress(total: int, enabled: bool, desc: str, unit: str = "run"):
    """A tqdm bar (disabled when ``enabled`` is False)."""
    from tqdm import tqdm
    return tqdm(total=total, disable=not enabled, desc=desc, unit=unit, dynamic_ncols=True)
