"""The waiting queue: requests not running yet, best first, bounded in length and in time.

Order is (priority, arrival): interactive chat before background drafts, and first come
first served within a priority. A preempted sequence comes back with its original rank, so
it runs again before anything that arrived after it. The bound and the deadline turn
overload into a quick, retryable refusal instead of an ever longer wait.
"""

import bisect
from typing import Generic, Protocol, TypeVar


class Ranked(Protocol):
    rank: tuple[int, int]  # (priority, arrival number): lower runs first


T = TypeVar("T", bound=Ranked)


class WaitingQueue(Generic[T]):
    """A sorted list; the caller holds the lock that guards it."""

    def __init__(self, bound: int):
        self.bound = bound
        self._items: list[T] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.bound

    def push(self, item: T) -> None:
        bisect.insort(self._items, item, key=lambda i: i.rank)

    def head(self) -> T | None:
        return self._items[0] if self._items else None

    def pop_head(self) -> T:
        return self._items.pop(0)

    def last(self) -> T | None:
        return self._items[-1] if self._items else None

    def items(self) -> list[T]:
        """A copy, best first: to look at outside the lock."""
        return list(self._items)

    def remove(self, items: list[T]) -> list[T]:
        """Remove `items`; return those that were still here (another thread may have won)."""
        gone = {id(item) for item in items}
        removed = [item for item in self._items if id(item) in gone]
        self._items = [item for item in self._items if id(item) not in gone]
        return removed

    def clear(self) -> list[T]:
        items, self._items = self._items, []
        return items
