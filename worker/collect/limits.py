"""A per-address rate limit for the collector: a token bucket per IP, in memory, bounded."""

from __future__ import annotations


class RateLimit:
    """`per_minute` requests a minute per address, in bursts of up to `per_minute`.

    An address idle long enough for its bucket to refill is forgotten, so memory holds
    only the addresses seen in about the last minute.
    """

    def __init__(self, per_minute: int, max_addresses: int = 100_000):
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60
        self.max_addresses = max_addresses
        self._buckets: dict[str, tuple[float, float]] = {}  # ip -> (tokens, at)

    def allow(self, ip: str, now: float) -> bool:
        tokens, at = self._buckets.get(ip, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
        if tokens < 1:
            self._buckets[ip] = (tokens, now)
            return False
        if len(self._buckets) >= self.max_addresses:
            self._forget_refilled(now)
        self._buckets[ip] = (tokens - 1, now)
        return True

    def retry_after_s(self, ip: str) -> int:
        tokens, _ = self._buckets.get(ip, (self.capacity, 0.0))
        return max(1, round((1 - tokens) / self.refill_per_s))

    def _forget_refilled(self, now: float) -> None:
        # Any bucket idle a minute is full again: forgetting it changes nothing.
        self._buckets = {ip: (tokens, at) for ip, (tokens, at) in self._buckets.items() if now - at < 60}
        if len(self._buckets) >= self.max_addresses:  # that many addresses in a minute: memory comes first
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)
