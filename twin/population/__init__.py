"""Residents as Mesa agents whose day plans make the demand and respond to policies.

See :mod:`twin.population.component` (the component and its clock),
:mod:`twin.population.policies` (cordons, work from home, evacuation),
:mod:`twin.population.outputs` (results and KPIs) and
:mod:`twin.population.agents` (the Mesa agents).
"""

from twin.population.agents import Household, Person, PersonView
from twin.population.component import PopulationComponent, build

__all__ = ["PopulationComponent", "Household", "Person", "PersonView", "build"]
