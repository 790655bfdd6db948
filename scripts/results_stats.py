"""How the results scripts print a figure measured on a small sample: two decimals and its 95%
interval, so 0.7188 on 48 questions reads as "0.72 [0.58, 0.83]" and not as four exact digits.

The interval is the one the report stored (`interval95`, the evaluation's own: a bootstrap for
means), else Wilson's from the share and its count when the count is known.
"""

import math


def wilson(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a share of n yes/no outcomes (stays in [0, 1], and is not
    zero-width at 0 or 1, unlike the normal approximation)."""
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(value: float | None, n: int | None = None, interval=None) -> str:
    """`value` with two decimals and its interval; "n/a" when nothing was measured (None)."""
    if value is None:
        return "n/a"
    if interval is None and n:
        interval = wilson(value, n)
    if interval is None:
        return f"{value:.2f}"
    return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"
