"""A floor for secrets that people choose (the bootstrap client's), not a strength meter.

Generated secrets (32 random bytes) are far above it; the floor catches placeholders, short
words and repeated characters, which an online guesser could find within the failure limits.
"""

from __future__ import annotations

import math
import string

MIN_LENGTH = 16
MIN_BITS = 80
MIN_DISTINCT_CHARACTERS = 10
PLACEHOLDER = "change-me-to-a-long-random-secret"  # .env.example's value
GENERATE_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"

# Printable ASCII without space and '%': HTTP Basic clients send secrets unescaped (curl, authlib)
# or percent-escaped (RFC 6749 §2.3.1), and only without '%' do both arrive as the same secret.
_ALLOWED = frozenset(string.ascii_letters + string.digits + string.punctuation) - {"%"}
_CLASSES = (
    frozenset(string.ascii_lowercase),
    frozenset(string.ascii_uppercase),
    frozenset(string.digits),
    frozenset(string.punctuation),
)


def estimated_bits(secret: str) -> float:
    """length × log2(size of the character classes used): what a random string of that
    length and alphabet would hold; a chosen one holds less, hence the other checks."""
    alphabet = sum(len(chars) for chars in _CLASSES if chars & set(secret))
    return len(secret) * math.log2(alphabet) if alphabet > 1 else 0.0


def weakness(secret: str) -> str | None:
    """Why the secret is refused, without quoting it; None if it is acceptable."""
    if len(secret) < MIN_LENGTH:
        return f"must have at least {MIN_LENGTH} characters"
    if not set(secret) <= _ALLOWED:
        return "may hold only printable ASCII characters other than space and '%'"
    folded = secret.lower().replace("_", "-")
    if folded == PLACEHOLDER or "change-me" in folded or "changeme" in folded:
        return "is the placeholder of .env.example, not a secret"
    if len(set(secret)) < MIN_DISTINCT_CHARACTERS:
        return f"must have at least {MIN_DISTINCT_CHARACTERS} different characters"
    if estimated_bits(secret) < MIN_BITS:
        return f"is too guessable (needs about {MIN_BITS} bits: longer, or more kinds of character)"
    return None
