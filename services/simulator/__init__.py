"""A simulated Trio VMS (development and test tool; never deployed as part of the product).

``Simulator`` is the Python API, ``create_app`` (services.simulator.app) serves it over HTTP.
See README.md in this folder.
"""

from services.simulator.faults import FaultConfig
from services.simulator.scenario import Change
from services.simulator.simulator import Simulator

__all__ = ["Change", "FaultConfig", "Simulator"]
