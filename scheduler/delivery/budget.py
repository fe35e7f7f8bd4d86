"""What one render of a template may cost, and the checks that keep it to that.

`Limits` are the numbers. A `Budget` counts one render's work (loop steps and calls, on a
count and on a clock) and output. `Sizes` checks the values a template makes: before an
operation that can make much more than it is given (`'x' * n`, `9 ** n`, a width of `n`, a
`join` with a long separator), and after the others, whose results grow only as fast as what
they are given. Going past a limit raises `BudgetExceeded`; `scheduler.delivery.sandbox`
calls all of this from inside Jinja's sandbox.
"""

from __future__ import annotations

import re
import string
from collections import deque
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, ValuesView
from dataclasses import dataclass
from typing import Any, NoReturn

from jinja2.exceptions import SecurityError


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one render may cost. Generous for real messages and pages (they take a few
    thousand steps and some kilobytes at most), small enough that a runaway template stops
    within a second or two."""

    steps: int = 200_000  # loop steps and calls
    seconds: float = 2.0  # on the environment's clock: a backstop for costly steps
    output: int = 4_000_000  # characters written, buffers included
    size: int = 1_000_000  # characters or items in one value; a width or count
    int_bits: int = 65_536  # about 20,000 digits
    text: int = 100_000  # characters given to wordwrap and urlize (slow on long words)
    template_bytes: int = 1_000_000  # one template file


class BudgetExceeded(SecurityError):
    """A render went past one of its `Limits`; the message says which."""


class Budget:
    """The work and output one render has used so far."""

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self.deadline = clock() + limits.seconds
        self.steps = 0
        self.written = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.steps:
            raise BudgetExceeded(f"too much work: over {self.limits.steps:,} loop steps "
                                 "and calls in one render")
        if self.clock() > self.deadline:
            raise BudgetExceeded(f"too much work: over {self.limits.seconds:g} s in one render")

    def write(self, characters: int) -> None:
        self.written += characters
        if self.written > self.limits.output:
            raise BudgetExceeded(f"too large: over {self.limits.output:,} characters of output")


def measure(value: object, limit: int) -> int:
    """About how many characters `str(value)` has, counting no further than past `limit`.
    A list met twice counts twice, as `str` writes it twice; one that holds itself is too
    large."""
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset | deque | KeysView | ValuesView
                             | ItemsView):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        else:
            total += 1
    return total


def _text(value: object) -> str | None:
    """A string, or bytes as one character a byte: what the size of a result depends on."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return value.decode("latin-1")
    return None


_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")


class Sizes:
    """The checks on what a template makes, against `Limits.size` and `Limits.int_bits`.
    `filter_<name>` checks the arguments of Jinja's filter <name>, bound by name."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.size = limits.size

    def too_large(self, what: str) -> NoReturn:
        raise BudgetExceeded(f"too large: {what} over {self.size:,}")

    def checked(self, value: Any) -> Any:
        """`value`, if it is no larger than `Limits.size`."""
        if measure(value, self.size) > self.size:
            self.too_large("a value of")
        return value

    def width(self, value: Any) -> None:
        if isinstance(value, int) and value > self.size:
            self.too_large("a width or count of")

    def bits(self, bits: int) -> None:
        if bits > self.limits.int_bits:
            raise BudgetExceeded(f"too large: a number of over {self.limits.int_bits:,} bits")

    def binop(self, operator: str, left: Any, right: Any) -> None:
        """`left <operator> right`, before it is computed."""
        if operator == "**" and isinstance(left, int) and isinstance(right, int) \
                and right > 0 and abs(left) > 1:
            self.bits(left.bit_length() * right)
        elif operator == "*" and isinstance(left, int) and isinstance(right, int):
            self.bits(left.bit_length() + right.bit_length())
        elif operator == "*" and (isinstance(left, int) or isinstance(right, int)):
            times, sequence = (right, left) if isinstance(right, int) else (left, right)
            if isinstance(sequence, str | bytes | list | tuple) and times > 1 \
                    and measure(sequence, self.size) * times > self.size:
                self.too_large("a value of")
        elif operator == "+" and not isinstance(left, int | float) \
                and measure(left, self.size) + measure(right, self.size) > self.size:
            self.too_large("a value of")
        elif operator == "%" and isinstance(left, str):
            self.percent(left, right)

    def percent(self, template: str, values: Any) -> None:
        """'%10s' % x: no width or precision over `size`, given or taken from `values`."""
        for width, precision in _PERCENT.findall(template):
            for number in (width, precision):
                if number == "*":
                    for given in values if isinstance(values, tuple) else (values,):
                        self.width(given)
                elif number:
                    self.width(int(number))

    def braces(self, template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """'{:>10}'.format(x): the same for str.format's specs, nested ones included."""
        try:
            fields = list(string.Formatter().parse(template))
        except ValueError:
            return  # the call itself says what is wrong
        for _, _, spec, _ in fields:
            for number in _NUMBER.findall(spec or ""):
                self.width(int(number))
            if spec and "{" in spec:
                for given in (*args, *kwargs.values()):
                    self.width(given)

    def method(self, obj: Any, args: tuple[Any, ...],
               kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
        """The methods of strings and numbers that can make much more than they are given;
        returns the arguments to call with (join's, made a list to be measured once)."""
        owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
        if isinstance(owner, int) and name == "to_bytes":
            self.width(args[0] if args else kwargs.get("length", 1))
        text = _text(owner)
        if text is None:
            return args
        if name in ("center", "ljust", "rjust", "zfill") and args:
            self.width(args[0])
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int) and len(text) + text.count("\t") * size > self.size:
                self.too_large("a value of")
        elif name == "join" and args:
            items = list(args[0])
            if measure(items, self.size) + len(text) * len(items) > self.size:
                self.too_large("a value of")
            return (items, *args[1:])
        elif name == "replace" and len(args) >= 2:
            self.replace(text, _text(args[0]), _text(args[1]), args[2] if len(args) > 2 else -1)
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((measure(v, self.size) for v in args[0].values()), default=1)
            if len(text) * longest > self.size:
                self.too_large("a value of")
        return args

    def replace(self, text: str, old: str | None, new: str | None, count: Any) -> None:
        if old is None or new is None:
            return  # the call itself says what is wrong
        found = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            found = min(found, count)
        if len(text) + found * max(0, len(new) - len(old)) > self.size:
            self.too_large("a value of")

    # --- Jinja's filters, by the names of their parameters

    def filter_center(self, given: dict[str, Any]) -> None:
        self.width(given["width"])

    def filter_indent(self, given: dict[str, Any]) -> None:
        width, text = given["width"], str(given["s"])
        prefix = len(width) if isinstance(width, str) else width
        lines = text.count("\n") + 1
        if isinstance(prefix, int) and prefix * lines + len(text) > self.size:
            self.too_large("a value of")

    def filter_wordwrap(self, given: dict[str, Any]) -> None:
        text, wrap = str(given["s"]), given["wrapstring"]
        if len(text) > self.limits.text:
            raise BudgetExceeded(f"too large: wordwrap of over {self.limits.text:,} characters")
        if len(text) * (1 + len(str(wrap or "\n"))) > self.size:
            self.too_large("a value of")

    def filter_urlize(self, given: dict[str, Any]) -> None:
        if len(str(given["value"])) > self.limits.text:
            raise BudgetExceeded(f"too large: urlize of over {self.limits.text:,} characters")

    def filter_join(self, given: dict[str, Any]) -> None:
        items = given["value"]
        if isinstance(items, Iterable) and not isinstance(items, str | Mapping):
            items = given["value"] = list(items)  # measured once, joined once
        count = len(items) if isinstance(items, list) else 0
        if measure(items, self.size) + len(str(given["d"])) * count > self.size:
            self.too_large("a value of")

    def filter_replace(self, given: dict[str, Any]) -> None:
        self.replace(str(given["s"]), str(given["old"]), str(given["new"]),
                     -1 if given["count"] is None else given["count"])

    def filter_format(self, given: dict[str, Any]) -> None:
        self.percent(str(given["value"]), given["args"] or tuple(given["kwargs"].values()))

    def filter_batch(self, given: dict[str, Any]) -> None:
        self.width(given["linecount"])

    def filter_slice(self, given: dict[str, Any]) -> None:
        self.width(given["slices"])

    def filter_tojson(self, given: dict[str, Any]) -> None:
        self.width(given["indent"])

    def filter_round(self, given: dict[str, Any]) -> None:
        precision = given["precision"]
        if isinstance(precision, int) and abs(precision) > 1000:
            raise BudgetExceeded("too large: a precision of over 1,000 digits")

    def filter_sum(self, given: dict[str, Any]) -> None:
        """Adding up lists or strings copies the total so far at every item."""
        if not isinstance(given["start"], int | float):
            items = given["iterable"] = list(given["iterable"])
            if len(items) * measure(items, self.size) > 50 * self.size:
                self.too_large("a value of")

    def lipsum(self, n: Any, most: Any) -> None:
        """lipsum(n, html, min, max): n paragraphs of up to `most` words."""
        if isinstance(n, int) and isinstance(most, int):
            self.width(n * most * 10)
