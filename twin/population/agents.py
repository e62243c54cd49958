"""Mesa agents over the population's arrays.

The population's state lives in numpy arrays (one row per person); the Mesa
agents are *views* of those rows, so a million persons cost no Python call
per agent per tick and a snapshot pickles the arrays once.  By default one
agent stands for a household (the unit that shares a home and a car and
evacuates together); ``population.agents: person`` makes one per person.
Either way ``twin.agents_by_type[Household]`` (or ``[Person]``) is a Mesa
:class:`~mesa.agent.AgentSet` that scripts can select, group and iterate::

    pop = twin.components["population"]
    big = pop.agents.select(lambda h: h.size >= 4)
    drivers = [p for h in big for p in h.members if p.car]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from city_models.plans import PURPOSES
from city_models.population import AGE_GROUPS

if TYPE_CHECKING:  # pragma: no cover
    from twin.population.component import PopulationComponent

__all__ = ["Household", "Person", "PersonView", "STATES"]

#: a person's state at any time: exactly one of these
STATES: tuple[str, ...] = ("at_home", "at_activity", "travelling")


class _PersonFields:
    """Read-only attributes of person ``self.index`` (shared by the view and the agent)."""

    pop: PopulationComponent
    index: int

    @property
    def age_group(self) -> str:
        return AGE_GROUPS[int(self.pop.people.age_group[self.index])]

    @property
    def worker(self) -> bool:
        return bool(self.pop.people.worker[self.index])

    @property
    def student(self) -> bool:
        return bool(self.pop.people.student[self.index])

    @property
    def car(self) -> bool:
        """Whether the person may drive a household car."""
        return bool(self.pop.people.car[self.index])

    @property
    def value_of_time(self) -> float:
        """Currency per hour."""
        return float(self.pop.people.vot[self.index])

    @property
    def home_node(self) -> int:
        return int(self.pop.people.home_node[self.index])

    @property
    def node(self) -> int:
        """Where the person is, or set off from when travelling."""
        return int(self.pop.node[self.index])

    @property
    def state(self) -> str:
        """One of :data:`STATES`, now."""
        return STATES[int(self.pop.person_states(np.array([self.index]))[0][0])]

    @property
    def plan(self) -> list[tuple[str, float]]:
        """The day's legs: (purpose of the destination, seconds spent there)."""
        pl = self.pop.plans
        return [
            (PURPOSES[int(pl.purpose[self.index, k])], float(pl.duration[self.index, k]))
            for k in range(int(pl.n_legs[self.index]))
        ]

    @property
    def next_leg(self) -> int:
        """Index of the next leg in :attr:`plan` (== its length: the day is done)."""
        return int(self.pop.leg[self.index])


class PersonView(_PersonFields):
    """A person of a household agent (not itself registered with Mesa)."""

    __slots__ = ("pop", "index")

    def __init__(self, pop: PopulationComponent, index: int) -> None:
        self.pop = pop
        self.index = int(index)

    def __repr__(self) -> str:
        return f"PersonView({self.index})"


class Household(mesa.Agent):
    """A household of the synthetic population, as a Mesa agent (a view of its rows)."""

    def __init__(self, model: mesa.Model, pop: PopulationComponent, index: int) -> None:
        super().__init__(model)
        self.pop = pop
        self.index = int(index)

    @property
    def size(self) -> int:
        """Number of persons in the household."""
        p = self.pop.people
        return int(p.hh_first[self.index + 1] - p.hh_first[self.index])

    @property
    def zone(self) -> int:
        """The household's home zone."""
        return int(self.pop.people.hh_zone[self.index])

    @property
    def node(self) -> int:
        """The household's home node."""
        return int(self.pop.people.hh_node[self.index])

    @property
    def has_car(self) -> bool:
        """Whether the household has a car."""
        return bool(self.pop.people.hh_car[self.index])

    @property
    def member_ids(self) -> np.ndarray:
        """Ids of the household's persons."""
        p = self.pop.people
        return np.arange(p.hh_first[self.index], p.hh_first[self.index + 1])

    @property
    def members(self) -> list[PersonView]:
        """The household's persons as views."""
        return [PersonView(self.pop, i) for i in self.member_ids]

    def __repr__(self) -> str:
        return f"Household({self.index}, size={self.size}, zone={self.zone})"


class Person(_PersonFields, mesa.Agent):
    """A person of the synthetic population, as a Mesa agent (a view of its row)."""

    def __init__(self, model: mesa.Model, pop: PopulationComponent, index: int) -> None:
        mesa.Agent.__init__(self, model)
        self.pop = pop
        self.index = int(index)

    @property
    def household(self) -> int:
        """The person's household id."""
        return int(self.pop.people.household[self.index])

    def __repr__(self) -> str:
        return f"Person({self.index})"
