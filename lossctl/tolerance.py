"""Tolerances: the one check of --atol/--rtol (every command that takes them), and the one comparison of a value
with its reference under them (--expect, decompose, check)."""

from __future__ import annotations

import math

from .errors import UsageError


def check_tolerances(*, atol: float | None, rtol: float | None) -> None:
    """Refuse a tolerance that is not a finite number >= 0 (None: the default by dtype). nan would fail every
    comparison and inf pass every one, so neither tests anything."""
    for option, tol in (("--atol", atol), ("--rtol", rtol)):
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float))
                                or not (math.isfinite(tol) and tol >= 0)):
            shown = tol if isinstance(tol, (int, float)) and not isinstance(tol, bool) else repr(tol)
            raise UsageError(f"must be a finite number >= 0; got {shown}", option=option)


def check_expect_tolerances(*, expect: float | None, atol: float | None, rtol: float | None) -> None:
    """--rtol/--atol of a loss command or merge: finite numbers >= 0, and given only with --expect, the one thing
    they apply to there (without it nothing is compared, and a CI job that forgot it would always pass)."""
    check_tolerances(atol=atol, rtol=rtol)
    given = [option for option, tol in (("--rtol", rtol), ("--atol", atol)) if tol is not None]
    if expect is None and given:
        raise UsageError("applies to --expect, which is not given: without it nothing is compared; add --expect "
                         "VALUE", option=given[0])


def close(got: float, want: float, atol: float, rtol: float, *, equal_nan: bool = False) -> bool:
    """|got - want| <= atol + rtol |want|. A non-finite side matches only itself: inf only inf of the same sign
    (else |100 - inf| <= rtol * inf would pass), and nan only nan where equal_nan (--expect nan), else nothing."""
    if not (math.isfinite(got) and math.isfinite(want)):
        return got == want or (equal_nan and math.isnan(got) and math.isnan(want))
    return abs(got - want) <= atol + rtol * abs(want)
