"""Closed sets as enums that are also their words (mkosi's StrEnum, which Python 3.6 lacks): JSON,
messages and comparisons read ``"gcc"``, code gets a type the checker can close."""

import enum


class StrEnum(str, enum.Enum):
    def __str__(self) -> str:
        return str(self.value)
