"""`ChoiceNode`: an OmegaConf string node that takes one of a few strings, and holds a plain string.

OmegaConf checks an Enum field while composing but keeps Enum members in the config, which
``json.dumps`` and ``yaml.safe_dump`` of ``OmegaConf.to_container(cfg)`` refuse (as experiment loggers
call them). A `ChoiceNode` is the default value of such a field in initreg's structured configs
(initreg.schemas): OmegaConf keeps a node given as a default, checks every value set or merged into it,
and `to_container` and `to_object` give its value as a `str`. Its choices travel with it when the config
is copied, merged or pickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import StringNode
from omegaconf.errors import ValidationError


class ChoiceNode(StringNode):
    """A string node whose value must be one of `choices` (or None if `is_optional`)."""

    def __init__(
        self,
        value: Any = None,
        choices: Sequence[str] = (),
        *,
        key: Any = None,
        parent: Any = None,
        is_optional: bool = True,
        flags: dict[str, bool] | None = None,
    ) -> None:
        self.choices = tuple(choices)  # set first: the value is checked on the way in
        super().__init__(value=value, key=key, parent=parent, is_optional=is_optional, flags=flags)

    def validate_and_convert(self, value: Any) -> str | None:
        """`value` as a string, if it is one of the choices; else a ValidationError naming them."""
        converted: str | None = super().validate_and_convert(value)
        if converted is not None and converted not in self.choices:
            raise ValidationError(f"Invalid value '$VALUE', expected one of [{', '.join(self.choices)}]")
        return converted

    def __deepcopy__(self, memo: dict[int, Any]) -> ChoiceNode:
        copied = ChoiceNode(choices=self.choices)  # its metadata (optional or not) is copied below
        self._deepcopy_impl(copied, memo)
        return copied
