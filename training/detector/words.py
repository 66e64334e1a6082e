"""Which words are targets, and the words the generator draws around them.

Policy (applied the same way in labels, training and evaluation): a target is the whole word
"chat" or "rat" in any letter case ("chat", "Chat", "CHAT", "rAt" all count). Anything longer
or different is another word, never a target: plurals and possessives ("chats", "rats",
"rat's"), words that contain a target ("chatter", "brat", "pirate", "rate"), and words one
letter away ("that", "hat", "cat", "char", "chart"). Punctuation around a word is not part of
it: "chat," and "(rat)" are targets, boxed on their letters only.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path

LABELS = ("chat", "rat")
DICTIONARY_PATHS = (Path("/usr/share/dict/american-english"), Path("/usr/share/dict/words"))
_PUNCTUATION = string.punctuation + "“”‘’«»"

# The list and other near misses that do not come out of one-letter edits.
HAND_PICKED_LOOKALIKES = (
    "chart", "char", "that", "hat", "cat", "rate", "brat", "chats", "rats", "scrat", "chap",
    "chad", "chit", "chai", "cheat", "what", "chatty", "chatter", "ratio", "rant", "raft",
    "drat", "frat", "prat", "art", "tar", "rot", "rut", "ran", "ray", "bat", "mat", "pat",
    "eat", "oat", "sat", "fat", "vat", "tat", "hart", "cart", "crat", "chaps", "chant",
    "rap", "rag", "ram", "raw", "rah", "rad", "charm", "chalk", "chain", "chair", "coat",
    "pirate", "karat", "ratty", "rattan", "grate", "crate", "orate", "irate",
)  # fmt: skip


def target_class(word: str) -> int | None:
    """The class id of a written word under the policy above, or None for any other word."""
    core = word.strip().strip(_PUNCTUATION).lower()
    return LABELS.index(core) if core in LABELS else None


@functools.cache
def dictionary_words() -> tuple[str, ...]:
    """Lower-case alphabetic words of Debian's `wamerican` (or a built-in fallback), no targets.

    Only ASCII letters, 2 to 12 of them; possessives and proper nouns are dropped.
    """
    for path in DICTIONARY_PATHS:
        if path.is_file():
            words = {
                line.strip()
                for line in path.read_text(encoding="utf-8", errors="ignore").splitlines()
            }
            kept = sorted(
                w
                for w in words
                if 2 <= len(w) <= 12 and w.isascii() and w.isalpha() and w.islower()
            )
            return tuple(w for w in kept if target_class(w) is None)
    return tuple(sorted(set(HAND_PICKED_LOOKALIKES) | set(_FALLBACK_WORDS.split())))


def _one_letter_edits(word: str) -> set[str]:
    letters = string.ascii_lowercase
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    replaces = {a + c + b[1:] for a, b in splits if b for c in letters}
    inserts = {a + c + b for a, b in splits for c in letters}
    return deletes | replaces | inserts


@functools.cache
def lookalike_words() -> tuple[str, ...]:
    """Words that a detector which does not read would take for a target.

    The hand-picked list plus every dictionary word one letter away from "chat" or "rat".
    """
    dictionary = set(dictionary_words())
    edits = set().union(*(_one_letter_edits(label) for label in LABELS))
    near = {w for w in edits if w in dictionary and len(w) >= 2}
    return tuple(sorted((near | set(HAND_PICKED_LOOKALIKES)) - set(LABELS)))


_FALLBACK_WORDS = """
the of and to in is was for on that with as by at from his her they this have had not are
but which one all were when we there can an your more if will would about out up their what
so said time them into some could two then has people other than its also over only first new
very after most where water way long little such much before good our years could any same
well those day great man old world life make still might place back house school number under
"""
