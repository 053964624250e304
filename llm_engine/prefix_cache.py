"""Prompts kept in the engine's cache after their sequence ends, for the next request to reuse.

Support prompts start alike: the system prompt, the few-shot examples, the ticket so far. When
a sequence ends, its prompt's cells (not its reply's: Scheduler._finish) move to a spare
engine sequence id (an entry) instead of being dropped, and a later request whose prompt
starts the same way takes those cells over (`Engine.share_prefix`) rather than computing them
again. Entries hold cache cells like any sequence; when cells run short, the least recently
used entry goes first.
"""

import collections
from dataclasses import dataclass

from llm_engine.engine import Engine

# Shorter common prefixes are not worth a cache operation (or a step's wait).
MIN_SHARED_PREFIX = 8


def shared_length(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists (a binary search of C-speed compares)."""
    low, high = 0, min(len(a), len(b))
    while low < high:  # a[:low] == b[:low] holds throughout
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass
class Entry:
    seq_id: int  # the engine sequence id that holds the cells
    tokens: list[int]


class PrefixCache:
    """Entries under the engine sequence ids `seq_ids`, least recently used first.

    Only the scheduler's thread uses it.
    """

    def __init__(self, engine: Engine, seq_ids: range):
        self.engine = engine
        self._free_ids = list(seq_ids)
        self._entries: collections.OrderedDict[int, Entry] = collections.OrderedDict()
        self.cells = 0  # cache cells the entries hold

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, tokens: list[int]) -> tuple[Entry | None, int]:
        """The entry sharing the longest prefix with `tokens`, and that length; a hit counts
        as a use, so the entry is evicted last."""
        best, length = None, 0
        for entry in self._entries.values():
            shared = shared_length(entry.tokens, tokens)
            if shared > length:
                best, length = entry, shared
        if best is not None:
            self._entries.move_to_end(best.seq_id)
        return best, length

    def store(self, slot: int, tokens: list[int]) -> None:
        """Keep the cells of `slot` (holding `tokens`) as an entry; the caller then releases it.

        An entry that `tokens` extend is replaced; if an entry already covers `tokens`, or
        there is no spare id, nothing is kept.
        """
        if len(tokens) < MIN_SHARED_PREFIX or not (self._free_ids or self._entries):
            return
        for entry in list(self._entries.values()):
            shared = shared_length(entry.tokens, tokens)
            if shared == len(tokens):
                self._entries.move_to_end(entry.seq_id)
                return
            if shared == len(entry.tokens):
                self._drop(entry)
        if not self._free_ids:
            self.evict_oldest()
        seq_id = self._free_ids.pop()
        self.engine.share_prefix(slot, seq_id, len(tokens))
        self._entries[seq_id] = Entry(seq_id, list(tokens))
        self.cells += len(tokens)

    def evict_oldest(self) -> bool:
        """Drop the least recently used entry; False when there is none."""
        if not self._entries:
            return False
        self._drop(next(iter(self._entries.values())))
        return True

    def clear(self) -> None:
        while self.evict_oldest():
            pass

    def _drop(self, entry: Entry) -> None:
        del self._entries[entry.seq_id]
        self.cells -= len(entry.tokens)
        try:
            self.engine.release(entry.seq_id)
        finally:
            self._free_ids.append(entry.seq_id)
