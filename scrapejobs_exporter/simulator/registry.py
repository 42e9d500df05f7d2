"""A kind of simulated object: every one in the order it was added, and each by its id."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar, overload

T = TypeVar("T")


class Registry(Sequence[T]):
    """The objects in the order they were added (what lists, pages and picks go by), and by id
    (what a request for one object goes by): both kept by `add`."""

    __slots__ = ("_by_id", "_id_of", "_items")

    def __init__(self, id_of: Callable[[T], str]) -> None:
        self._id_of = id_of
        self._items: list[T] = []
        self._by_id: dict[str, T] = {}

    def add(self, item: T) -> None:
        self._items.append(item)
        self._by_id[self._id_of(item)] = item

    def get(self, object_id: str) -> T | None:
        return self._by_id.get(object_id)

    def by_id(self, object_id: str) -> T:
        """The object with this id; KeyError if there is none."""
        return self._by_id[object_id]

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self._items[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def __reversed__(self) -> Iterator[T]:
        return reversed(self._items)
