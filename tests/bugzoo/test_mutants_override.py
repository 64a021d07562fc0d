"""A mutant overrides only methods RaftServer has.

A mutant whose method name no longer exists on RaftServer (after a rename
there, or a typo here) overrides nothing: it runs as plain raftcore, and the
zoo would test the checker against a bug that is not in the code. The zoo's
own test looks only at names RaftServer has, so it cannot see this.
"""

from __future__ import annotations

import inspect

import pytest

from raftcore import RaftServer
from virtraft.nodes.raftcore import RaftcoreNode
from virtraft.zoo import mutants

MUTANT_CLASSES = [
    value
    for value in vars(mutants).values()
    if isinstance(value, type)
    and issubclass(value, RaftServer)
    and value.__module__ == mutants.__name__
]


def foreign_methods(cls: type) -> list[str]:
    """Methods defined in the body of `cls` (dunders aside) that neither
    RaftServer nor its bases define."""
    return [
        name
        for name, value in vars(cls).items()
        if not (name.startswith("__") and name.endswith("__"))
        and (inspect.isfunction(value) or isinstance(value, (staticmethod, classmethod, property)))
        and not hasattr(RaftServer, name)
    ]


def test_every_registered_mutant_is_checked() -> None:
    node_mutants = set(mutants.NODE_MUTANTS.values())
    assert set(mutants.MUTANTS.values()) - node_mutants <= set(MUTANT_CLASSES)


@pytest.mark.parametrize("cls", mutants.NODE_MUTANTS.values(), ids=lambda cls: cls.__name__)
def test_a_node_mutant_overrides_only_methods_of_the_node(cls: type) -> None:
    """A mutant of the state machine (a RaftcoreNode subclass) likewise."""
    assert cls.mutated in vars(cls)
    own = [
        name
        for name, value in vars(cls).items()
        if inspect.isfunction(value) and not hasattr(RaftcoreNode, name)
    ]
    assert own == []


@pytest.mark.parametrize("cls", MUTANT_CLASSES, ids=lambda cls: cls.__name__)
def test_a_mutant_overrides_only_methods_of_raftserver(cls: type) -> None:
    assert foreign_methods(cls) == []


def test_an_override_of_a_missing_method_is_caught() -> None:
    """The check itself: a misspelled override, a helper of its own, and a
    static method are all reported; dunders and class attributes are not."""

    class Misspelled(mutants.Mutant):
        kind = "harmless"
        mutated = "_may_grant_votes"

        def __repr__(self) -> str:
            return "Misspelled()"

        def _may_grant_votes(self, msg: object) -> bool:  # RaftServer has _may_grant_vote
            return True

        def _may_grant_vote(self, msg: object) -> bool:
            return True

        @staticmethod
        def helper() -> None:
            pass

    assert foreign_methods(Misspelled) == ["_may_grant_votes", "helper"]
