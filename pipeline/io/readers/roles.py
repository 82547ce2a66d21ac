"""Mapping speaker labels ("T", "Client 2", "Counsellor", "P") to roles."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.codebook import load_codebook
from pipeline.errors import ConfigError, SpeakerMappingError
from pipeline.records import ROLES

_NUMBER = re.compile(r"[\s_#.-]*\d+$")


def parse_roles(spec: str | None) -> dict[str, str]:
    """Parse ``--roles "S=client,C=therapist"`` into a label->role mapping."""
    if not spec:
        return {}
    out: dict[str, str] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        label, sep, role = item.partition("=")
        role = role.strip().lower()
        if not sep or not label.strip() or role not in ROLES:
            raise ConfigError(
                f"bad --roles item {item.strip()!r}",
                expected=f"LABEL=ROLE pairs separated by commas, ROLE one of {', '.join(ROLES)}",
                fix='e.g. --roles "S=client,C=therapist"',
            )
        out[label.strip().lower()] = role
    return out


def normalise_label(label: str) -> str:
    """'Client 2' -> 'client', 'T12' -> 't', 'Dr. Smith' -> 'dr. smith'."""
    base = label.strip().strip(":").strip().lower()
    stripped = _NUMBER.sub("", base).strip()
    return stripped or base


@dataclass
class RoleMapper:
    """Maps labels to roles: explicit overrides first (exact, then normalised), then the
    aliases of the label file."""

    overrides: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.aliases = load_codebook().role_aliases
        # ReadOptions(roles={"Sam": "client"}) from library callers: match labels case-blind,
        # as parse_roles does for --roles, and refuse roles the data model does not have.
        self.overrides = {label.strip().lower(): role for label, role in self.overrides.items()}
        bad = sorted({role for role in self.overrides.values() if role not in ROLES})
        if bad:
            raise ConfigError(f"unknown role(s) {', '.join(map(repr, bad))} in the role mapping",
                              expected=f"roles {', '.join(ROLES)}", fix='e.g. roles={"S": "client"}')

    def role(self, label: str) -> str | None:
        raw = label.strip().lower()
        if raw in self.overrides:
            return self.overrides[raw]
        norm = normalise_label(label)
        if norm in self.overrides:
            return self.overrides[norm]
        if raw in self.aliases:
            return self.aliases[raw]
        if norm in self.aliases:
            return self.aliases[norm]
        first = norm.split()[0] if norm.split() else norm
        return self.aliases.get(first)

    def is_known(self, label: str) -> bool:
        return self.role(label) is not None

    def require(self, labels: dict[str, int], path: str) -> dict[str, str]:
        """Map every label (label -> first line seen); raise naming all unmapped labels."""
        mapping: dict[str, str] = {}
        unmapped: list[tuple[str, int]] = []
        for label, line in labels.items():
            role = self.role(label)
            if role is None:
                unmapped.append((label, line))
            else:
                mapping[label] = role
        if unmapped:
            quotable = [label for label, _ in unmapped if _looks_like_label(label)]
            example = ",".join(f"{label}=client" for label in quotable[:2])
            prose = len(quotable) < len(unmapped)
            raise SpeakerMappingError(
                "speaker labels that cannot be mapped to a role",
                path=path,
                expected="therapist/client/other labels such as T, C, P, Therapist, Client 2",
                found=", ".join(_describe(label, line) for label, line in unmapped),
                fix=(f'map them with --roles, e.g. --roles "{example}"' if example else "map them with --roles")
                + ("; a long 'label' is usually a line of speech with a colon in it: join it to the turn above"
                   " or put the speaker label in front of it" if prose else ""),
            )
        return mapping


def _looks_like_label(label: str) -> bool:
    """A speaker label is short (T, Client 2, Dr Lee); a longer one is most likely a line of
    speech taken for a label ("Then my neighbour said: ..."), whose words must not be echoed."""
    return len(label) <= 24 and len(label.split()) <= 3


def _describe(label: str, line: int) -> str:
    if _looks_like_label(label):
        return f"{label!r} (first at line {line})"
    return f"a label of {len(label.split())} words (first at line {line})"
