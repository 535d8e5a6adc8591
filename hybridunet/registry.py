"""One small name -> builder registry, shared by every family of parts (models, blocks, ...)."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from hybridunet.errors import UnknownNameError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Maps names to builders (classes or functions) of one family of parts.

    One type serves every family: the models (`hybridunet.models.MODELS`), the blocks,
    skips, bottlenecks and upsamplers (`hybridunet.nn`) and the losses.

    Args:
        family: What the registry holds, as error messages name it (`"block"`).

    Example:
        ```python
        from torch import nn
        from hybridunet.registry import Registry

        HEADS = Registry("head")

        @HEADS.register("conv1x1")
        class Conv1x1(nn.Conv2d):
            def __init__(self, channels: int, classes: int) -> None:
                super().__init__(channels, classes, 1)

        head = HEADS.build("conv1x1", channels=8, classes=3)
        ```
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._builders: dict[str, Callable[..., T]] = {}
        self._info: dict[str, Any] = {}

    @overload
    def register(self, name: str, *, info: Any = None) -> Callable[[F], F]: ...

    @overload
    def register(self, name: str, builder: F, *, info: Any = None) -> F: ...

    def register(self, name: str, builder: Callable[..., T] | None = None, *, info: Any = None) -> Any:
        """Register `builder` under `name`; without `builder`, return a decorator.

        Args:
            name: The part's name; it must not be taken.
            builder: A class or function that builds the part from keywords.
            info: Metadata kept beside the builder (a preset's description, parts and
                reference), as timm keeps a default_cfg per model; read it back with `info()`.

        Returns:
            `builder`, or a decorator that registers and returns what it decorates.

        Raises:
            ValueError: `name` is empty, or already registered (as a decorator: when it is
                applied).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.family} name must be a non-empty string, got {name!r}")

        def add(fn: F) -> F:
            if name in self._builders:
                raise ValueError(f"{self.family} {name!r} is already registered")
            self._builders[name] = fn
            if info is not None:
                self._info[name] = info
            return fn

        return add if builder is None else add(builder)

    def get(self, name: str | type) -> Callable[..., T]:
        """The builder registered under `name`.

        Args:
            name: A registered name, or a class, which is its own builder (timm's
                `get_act_layer` takes one too).

        Returns:
            The builder.

        Raises:
            hybridunet.errors.UnknownNameError: `name` is not registered; the message lists the
                known names and the closest one.
        """
        if isinstance(name, type):
            return name
        try:
            return self._builders[name]
        except (KeyError, TypeError):
            known = ", ".join(self.names()) or "none"
            close = difflib.get_close_matches(str(name), self._builders, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.family} {name!r}.{hint} Known {self.family}s: {known}"
            ) from None

    def info(self, name: str) -> Any:
        """The metadata registered with `name` (None when it has none)."""
        self.get(name)
        return self._info.get(name)

    def build(self, name: str | type, /, **kwargs: Any) -> T:
        """Build the part registered under `name` (or the class given in its place).

        Keywords are checked against the builder's signature first, so a misspelt option fails
        with the accepted ones listed rather than deep inside a constructor.

        Args:
            name: A registered name, or a class.
            **kwargs: The builder's keywords.

        Returns:
            What the builder returns: for the part registries, an `nn.Module`.

        Raises:
            hybridunet.errors.UnknownNameError: `name` is not registered.
            TypeError: The keywords do not fit the builder (the accepted ones are listed).
        """
        builder = self.get(name)
        self.check_keywords(name, kwargs, partial=False)
        return builder(**kwargs)

    def check_keywords(self, name: str | type, kwargs: dict[str, Any], partial: bool = True) -> None:
        """Fail, listing the accepted keywords, when `kwargs` do not fit `name`'s builder
        (with `partial`, required keywords may be missing: a config gives them later)."""
        signature = _signature(self.get(name))
        if signature is not None:
            try:
                (signature.bind_partial if partial else signature.bind)(**kwargs)
            except TypeError as err:
                accepted = ", ".join(
                    p.name
                    for p in signature.parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                )
                shown = getattr(name, "__qualname__", repr(name))
                raise TypeError(
                    f"{self.family} {shown}: {err}. Accepted keywords: {accepted}"
                ) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style glob such as ``"*unet*"``."""
        return sorted(n for n in self._builders if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._builders)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, names={self.names()})"


def _signature(builder: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(builder)
    except (TypeError, ValueError):  # some builtins have no signature
        return None
