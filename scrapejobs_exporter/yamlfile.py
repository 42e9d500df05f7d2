"""Reading the files an operator points us at (config, web config, secrets), and their YAML.

Whatever the path names, the read ends quickly with the text or one plain line: only regular
files (a FIFO would block, `/dev/zero` never ends), at most a size cap, UTF-8 only. The YAML is
strict where PyYAML is lenient: a duplicate key is an error (not "last one wins"), and the node
graph is checked before anything is built from it: no recursive alias, no alias expanding to
more than `MAX_NODES` nodes (a "billion laughs" file is a few hundred bytes), no nesting past
`MAX_DEPTH`, no integer longer than `MAX_INT_DIGITS`.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["FileProblem", "YamlProblem", "load_yaml", "read_text_file"]

MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_INT_DIGITS = 30
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_FILE_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileProblem(ValueError):
    """A file cannot be used; the message is one line without the path."""


class YamlProblem(ValueError):
    """YAML that is refused; the message is one line, with its position when known."""


def read_text_file(path: str | Path, limit: int) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FileProblem(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileProblem(os.strerror(errno.EISDIR))
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _FILE_TYPES if test(info.st_mode)), "special")
            raise FileProblem(f"not a regular file ({kind})")
        if info.st_size > limit:
            raise FileProblem(f"too large ({info.st_size} bytes; at most {limit})")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise FileProblem(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileProblem(f"too large (more than {limit} bytes)")
    return decode_text(data)


def decode_text(data: bytes) -> str:
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise FileProblem(f"not UTF-8 text ({name}; save it as UTF-8)")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise FileProblem(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without duplicate keys, unbounded integers or unbounded nesting."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # Stopped here, early: PyYAML's scanner does work per open bracket for every token,
        # so 10,000 `[` would take seconds (and the composer recurses) before failing.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlProblem(f"line {mark.line + 1}: nested too deeply")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden on purpose
            key = self.construct_object(key_node, deep=False)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: SafeLoader reports it below
            if duplicate:
                raise ConstructorError(
                    None, None, f"duplicate key {_short(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        digits = str(node.value).lstrip("+-0").replace("_", "")
        if len(digits) > MAX_INT_DIGITS:
            raise ConstructorError(
                None, None, f"number too large ({len(digits)} digits)", node.start_mark
            )
        value: int = super().construct_yaml_int(node)
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def load_yaml(text: str) -> Any:
    """The value of a YAML document, or YamlProblem."""
    try:
        loader = _StrictLoader(text)  # checks the characters first
    except yaml.YAMLError as exc:
        raise YamlProblem(f"YAML syntax error: {str(exc).splitlines()[0]}") from None
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_graph(node)
            return loader.construct_document(node)
        except RecursionError:
            raise YamlProblem("nested too deeply") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            kind = "YAML error" if isinstance(exc, ConstructorError) else "YAML syntax error"
            raise YamlProblem(f"{where}{kind}: {problem}") from None
    finally:
        loader.dispose()


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _check_graph(root: Node) -> None:
    """Refuse recursive aliases, too deep nesting and aliases that expand past MAX_NODES;
    iterative, and linear in the nodes as written (shared ones are sized once)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool, int]] = [(root, False, 0)]
    while stack:
        node, done, depth = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_NODES:
                raise YamlProblem(
                    f"line {node.start_mark.line + 1}: aliases expand to more than "
                    f"{MAX_NODES} values"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlProblem(f"line {node.start_mark.line + 1}: recursive alias")
        if depth > MAX_DEPTH:
            raise YamlProblem(f"line {node.start_mark.line + 1}: nested too deeply")
        on_path.add(key)
        stack.append((node, True, depth))
        stack.extend((child, False, depth + 1) for child in _children(node))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
