"""Declaring :data:`funk_perception.ros.params.PARAMETERS` on an rclpy node: strict values, lenient types.

rclpy checks a start-up value (``-p``, ``--params-file``) against the
declared type and range inside ``declare_parameter`` and raises its own
exceptions, before the node can say which parameter was wrong in its own
words; and it refuses an integer for a floating-point parameter or one
string for a list of strings. So each parameter is first declared with
dynamic typing (rclpy takes any value), every value is checked and converted
by :func:`funk_perception.ros.params.validate`, and only then does the
parameter get its static type and range (``set_descriptor``), which is what
``ros2 param describe`` shows and what rclpy enforces afterwards. At run time
a pre-set callback makes the same conversions before rclpy's type check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from funk_perception.ros.params import PARAMETERS, Param, coerce, validate
from funk_perception.tasks import TASKS


def descriptor(param: Param) -> ParameterDescriptor:
    """The static descriptor of ``param``: type (the default's), description, read-only flag, range, choices."""
    out = ParameterDescriptor(
        description=param.description,
        read_only=param.read_only,
        type=Parameter.Type.from_parameter_value(param.default).value,
    )
    if param.low is not None and isinstance(param.default, float):
        out.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high))]
    elif param.low is not None:
        out.integer_range = [
            IntegerRange(from_value=int(param.low), to_value=int(param.high), step=int(param.step or 1))
        ]
    if param.choices:
        out.additional_constraints = f"one of: {', '.join(param.choices)}"
    return out


def declare_parameters(
    node: Node, parameters: Sequence[Param] = PARAMETERS, available_tasks: Sequence[str] = TASKS
) -> dict[str, Any]:
    """Declare ``parameters`` on ``node`` and return their values in the declared types.

    Raises ValueError naming every refused value (parameter, expected, found), so a bad start-up
    value ends in one line however many are wrong."""
    for param in parameters:
        node.declare_parameter(
            param.name, param.default, ParameterDescriptor(description=param.description, dynamic_typing=True)
        )
    values: dict[str, Any] = {}
    errors: list[str] = []
    for param in parameters:
        try:
            values[param.name] = validate(param.name, node.get_parameter(param.name).value, available_tasks)
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ValueError("; ".join(errors))
    for param in parameters:
        # the value as given where it already has the declared type, else the converted one
        node.set_descriptor(
            param.name, descriptor(param), Parameter(param.name, value=values[param.name]).get_parameter_value()
        )
    return values


def convert_types(params: list[Parameter]) -> list[Parameter]:
    """Pre-set callback: an integer for a floating-point parameter becomes a float, one string for a list
    of strings a one-element list; rclpy's type check then sees the declared type."""
    out = []
    for param in params:
        value = coerce(param.name, param.value)
        out.append(param if value is param.value else Parameter(param.name, value=value))
    return out
