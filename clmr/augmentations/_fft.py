"""FFT sizes that every backend transforms quickly."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=64)
def fast_fft_size(n: int) -> int:
    """Smallest m >= n of the form 2^a 3^b 5^c with b <= 1 and c <= 4.

    Higher powers of 3 and 5 are left out: pocketfft (torch's CPU backend) takes several
    times as long for 2 * 3^10 = 118,098 or 2 * 3 * 5^6 = 93,750 as for 120,000.
    """
    best = 1 << max(n - 1, 0).bit_length()
    for odd in (1, 3, 5, 15, 25, 75, 125, 375, 625, 1875):
        m = odd
        while m < n:
            m *= 2
        best = min(best, m)
    return best
