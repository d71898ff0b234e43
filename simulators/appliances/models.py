"""Which physics model drives which kind of appliance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.devices.profile import DeviceKind
from simulators.appliances.cold_room import ColdRoomModel
from simulators.appliances.dishwasher import DishwasherModel
from simulators.appliances.fryer import FryerModel
from simulators.appliances.oven import OvenModel
from simulators.appliances.scale import ScaleModel
from simulators.appliances.tank import TankModel

if TYPE_CHECKING:
    from simulators.appliances.physics import ApplianceModel
    from simulators.appliances.registers import RegisterBank

__all__ = ["MODELS", "model_for"]

#: The model class for each kind of Modbus appliance.
MODELS: dict[DeviceKind, type[ApplianceModel]] = {
    DeviceKind.FRYER: FryerModel,
    DeviceKind.OVEN: OvenModel,
    DeviceKind.FRIDGE: ColdRoomModel,
    DeviceKind.FREEZER: ColdRoomModel,
    DeviceKind.DISHWASHER: DishwasherModel,
    DeviceKind.SCALE: ScaleModel,
    DeviceKind.LEVEL: TankModel,
}


def model_for(bank: RegisterBank, **options: Any) -> ApplianceModel:
    """The physics for the bank's profile, built with ``options`` (e.g. ``ambient_c``).

    Raises:
        ValueError: no model simulates this kind of device, or the profile lacks points the
            model needs (the message names them).
    """
    kind = bank.profile.profile.kind
    cls = MODELS.get(kind)
    if cls is None:
        raise ValueError(
            f"no physics for {kind.value!r} devices (profile {bank.profile.profile.id!r}); "
            "run it with physics=False to serve static registers"
        )
    return cls(bank, **options)
