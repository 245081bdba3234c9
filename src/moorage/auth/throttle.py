"""Failed-login throttling: growing lockouts per (account, address), a failure ceiling per address.

The rules (those of OWASP's guidance and of Django-axes' username+address mode):
- failures are counted per (account, client address); the first FREE_FAILURES cost nothing, then
  each failure locks that pair for 1, 2, 4 ... s, up to MAX_DELAY. A success clears the pair; a
  pair with no failure for FORGET_AFTER is forgotten.
- failures from one address (any account) are also counted in ADDRESS_WINDOW; past the ceiling,
  every further failure from there locks its pair for MAX_DELAY at once (one guess per account
  per lockout, which stops password spraying).
- nothing but a pair's own failures ever stops a credential from being checked: the ceiling
  only makes failing pairs lock sooner, so failures for other accounts from a shared address (a
  NAT, a load balancer) never lock out a user who types the right password.
Robot secrets are 256 random bits: guessing them is hopeless, so they are not throttled at all.
"""

from __future__ import annotations

from dataclasses import dataclass

FREE_FAILURES = 5
MAX_DELAY = 300.0
FORGET_AFTER = 3600.0
ADDRESS_WINDOW = 300.0


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    """The numbers of the throttle, and the lockout they give after a failure."""

    free_failures: int = FREE_FAILURES
    max_delay: float = MAX_DELAY
    forget_after: float = FORGET_AFTER
    address_limit: int = 100
    address_window: float = ADDRESS_WINDOW
    alert_address_failures: int = 0  # failures from one address in the window that alert (0: off)

    def lockout(self, pair_failures: int, address_failures: int) -> float:
        """Seconds the pair stays locked after its `pair_failures`-th consecutive failure."""
        if address_failures > self.address_limit:
            return self.max_delay
        if pair_failures < self.free_failures:
            return 0.0
        return min(2.0 ** (pair_failures - self.free_failures), self.max_delay)


def pair_key(username: str, address: str | None) -> str:
    """The counter of one account's failures from one address."""
    return f"pair:{address or '-'}|{username[:200]}"


def address_key(address: str | None) -> str:
    """The counter of all failures from one address."""
    return f"addr:{address or '-'}"
