"""Jinja's sandbox with a budget: an organizer's template that works or grows without end
stops, with its file and line, like any other broken template.

Jinja's `SandboxedEnvironment` keeps a template from Python's internals, but not from nested
`range(100000)` loops, `{{ 9**(9**9) }}` or `'x' * 10**9`. `BoundedSandbox` gives every render
a fresh `Budget` (`scheduler.delivery.budget` has the numbers and the size checks):

- it rewrites each template as it compiles it, so that every loop step counts, every `a ~ b`
  is checked, and every output statement counts the text it writes;
- every call (a macro, a method, a filter) counts too, and what it returns is checked;
- `*`, `**`, `+` and `%` are checked before they are computed (`intercepted_binops`), and so
  are the filters and methods that take a width or a count;
- `{{ expressions }}` are counted as they are written (`finalize`), in macros and
  `{% set %}` blocks too;
- a template may not extend itself, and its file must be UTF-8 text of at most
  `Limits.template_bytes` (`TemplateFolder`).

Going past a limit raises `BudgetExceeded` (a `SecurityError`) where the template is, so the
traceback gives its file and line; `MemoryError`, `OverflowError` and `RecursionError` become
one too. Work is counted inside `BoundedTemplate.render` and `render_block` only.
"""

from __future__ import annotations

import inspect
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import update_wrapper, wraps
from pathlib import Path
from typing import Any, cast

from jinja2 import FileSystemLoader, Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import Environment
from jinja2.exceptions import TemplateSyntaxError
from jinja2.loaders import split_template_path
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from scheduler.delivery.budget import Budget, BudgetExceeded, Limits, Sizes, measure


class UnreadableTemplate(TemplateSyntaxError):
    """A template file that is not UTF-8 text, or too large; says where, on one line."""

    def __str__(self) -> str:
        return f"{self.filename or self.name} line {self.lineno}: {self.message}"


_budget: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


class _Metered:
    """An iterable whose every item is a step of the budget; its length is the original's."""

    __slots__ = ("_budget", "_items")

    def __init__(self, items: Iterable[Any], budget: Budget) -> None:
        self._items = items
        self._budget = budget

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            self._budget.step()
            yield item

    def __len__(self) -> int:
        return len(self._items)  # type: ignore[arg-type]  # TypeError: the loop counts


class _Metering(NodeTransformer):
    """Rewrites a template's tree so that it counts its work: loops step through
    `bounded_iter`, `a ~ b` is checked, and each output statement counts its own text."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def hook(self, name: str, argument: nodes.Expr, lineno: int) -> nodes.Call:
        call = nodes.Call(nodes.EnvironmentAttribute(name), [argument], [], None, None)
        call.set_lineno(lineno, override=True)
        argument.set_lineno(lineno)
        call.set_environment(self.environment)
        return call

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self.hook("bounded_iter", cast(nodes.Expr, node.iter), node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self.hook("checked", node, node.lineno)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        text = sum(len(child.data) for child in node.nodes
                   if isinstance(child, nodes.TemplateData))
        if text:
            constant = nodes.Const(text)
            constant.set_lineno(node.lineno)
            node.nodes.insert(0, self.hook("count_text", constant, node.lineno))
        return node


class _BoundedCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for extends in node.find_all(nodes.Extends):
            if isinstance(extends.template, nodes.Const) and extends.template.value == self.name:
                self.fail("it extends itself (a template in your folder hides the built-in "
                          "one of the same name)", extends.lineno)
        _Metering(self.environment).visit(node)
        super().visit_Template(node, frame)


class BoundedTemplate(Template):
    """A template whose renders count against a fresh `Budget` each."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        context = dict(*args, **kwargs)
        return self._bounded(lambda: self.root_render_func(self.new_context(context)))

    def generate(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        """The render in one piece: a budget holds for a render, not for a stream."""
        yield self.render(*args, **kwargs)

    def render_block(self, name: str, context: Mapping[str, Any]) -> str:
        """{% block name %} alone, with `context`."""
        return self._bounded(lambda: self.blocks[name](self.new_context(dict(context))))

    def _bounded(self, events: Callable[[], Iterator[str]]) -> str:
        environment = self.environment
        assert isinstance(environment, BoundedSandbox)
        token = _budget.set(environment.new_budget())
        try:
            try:
                return environment.concat(events())
            except Exception:
                environment.handle_exception()
        except RecursionError as e:
            raise BudgetExceeded("too deep: macros, includes or extends that call themselves "
                                 "without end").with_traceback(e.__traceback__) from None
        except MemoryError as e:
            raise BudgetExceeded("too large: out of memory").with_traceback(
                e.__traceback__) from None
        except OverflowError as e:
            what = e.args[-1] if e.args and isinstance(e.args[-1], str) else "a number"
            raise BudgetExceeded(f"too large: {what}").with_traceback(e.__traceback__) from e
        finally:
            _budget.reset(token)


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, with `Limits` on each render (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator
    template_class = BoundedTemplate

    def __init__(self, *, limits: Limits | None = None,
                 clock: Callable[[], float] = time.thread_time, **options: Any) -> None:
        """`clock`: the seconds a render may take are counted on it (by default the
        rendering thread's CPU time, so that a busy machine does not fail a template)."""
        super().__init__(finalize=self.count_output, **options)
        self.limits = limits or Limits()
        self.sizes = Sizes(self.limits)
        self.clock = clock
        self.filters = {name: self._metered_filter(name, f) for name, f in self.filters.items()}
        self.globals["lipsum"] = self._lipsum(cast(Callable[..., str], self.globals["lipsum"]))

    def new_budget(self) -> Budget:
        return Budget(self.limits, self.clock)

    def step(self) -> None:
        budget = _budget.get()
        if budget is not None:
            budget.step()

    # --- hooks the compiled template calls (see _Metering)

    def bounded_iter(self, items: Iterable[Any]) -> Iterable[Any]:
        """What a {% for %} loop iterates: every item a step."""
        budget = _budget.get()
        return items if budget is None else _Metered(items, budget)

    def checked(self, value: Any) -> Any:
        """The value of `a ~ b`, if it is not too large."""
        return self.sizes.checked(value)

    def count_text(self, characters: int) -> str:
        """The template's own text an output statement writes."""
        budget = _budget.get()
        if budget is not None:
            budget.write(characters)
        return ""

    def count_output(self, value: Any) -> Any:
        """Every {{ expression }} written (the environment's `finalize`)."""
        budget = _budget.get()
        if budget is not None:
            budget.write(measure(value, self.limits.output))
        return value

    # --- the sandbox's own hooks

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.step()
        if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive loop
            args = (self.bounded_iter(args[0]), *args[1:])
        args = self.sizes.method(obj, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, list | dict | set | deque):  # l.extend(l), d.update(...)
            self.sizes.checked(owner)
        return self.sizes.checked(result)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        self.sizes.binop(operator, left, right)
        return self.sizes.checked(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        template: str = value.__self__

        def checked_format(*args: Any, **kwargs: Any) -> str:
            self.sizes.braces(template, args, kwargs)
            return self.sizes.checked(formatter(*args, **kwargs))  # type: ignore[no-any-return]

        return update_wrapper(checked_format, formatter)

    # --- filters and globals

    def _metered_filter(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        """The filter, as a step of the budget, its result checked, and its arguments first
        for the filters that can make much more than they are given (`Sizes.filter_<name>`)."""
        check = getattr(self.sizes, f"filter_{name}", None)
        inner = inspect.unwrap(original)
        signature = inspect.signature(inner)
        # Jinja's sync/async filters take a context they do not pass on to the inner function
        skip = int(hasattr(original, "jinja_pass_arg") and not hasattr(inner, "jinja_pass_arg"))

        @wraps(original)  # keeps jinja_pass_arg: the same first arguments
        def metered(*args: Any, **kwargs: Any) -> Any:
            self.step()
            if check is not None:
                try:
                    bound = signature.bind(*args[skip:], **kwargs)
                except TypeError:
                    pass  # the filter itself says what is wrong
                else:
                    bound.apply_defaults()
                    check(bound.arguments)  # may replace an iterable by a list
                    args, kwargs = (*args[:skip], *bound.args), bound.kwargs
            return self.sizes.checked(original(*args, **kwargs))

        return metered

    def _lipsum(self, original: Callable[..., str]) -> Callable[..., str]:
        def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
            self.sizes.lipsum(n, max)
            return original(n, html, min, max)

        return lipsum


class TemplateFolder(FileSystemLoader):
    """One folder of templates: UTF-8 text files of at most `Limits.template_bytes`."""

    def __init__(self, folder: Path, limits: Limits | None = None) -> None:
        super().__init__(folder)
        self.folder = folder
        self.limits = limits or Limits()

    def get_source(self, environment: Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        path = self.folder.joinpath(*split_template_path(template))
        filename = os.path.normpath(path)
        if path.is_file() and path.stat().st_size > self.limits.template_bytes:
            raise UnreadableTemplate(f"larger than {self.limits.template_bytes:,} bytes", 1,
                                     template, filename)
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError:
            raw = path.read_bytes()
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                line = raw.count(b"\n", 0, e.start) + 1
                raise UnreadableTemplate(f"not UTF-8 text (byte {raw[e.start]:#04x})", line,
                                         template, filename) from None
            raise
