"""Pure conversions between ROS 2 messages and the ROS-free deploy runtime's objects.

No ``rclpy`` here, only message classes: every function is unit-tested without DDS.

Time: ROS stamps are integer nanoseconds (``builtin_interfaces/Time``); the runtime reads
float seconds. The node picks an epoch (its clock at configure, in ns) and hands the
runtime ``(t_ns - epoch_ns) * 1e-9``: seconds since configure, exact to the nanosecond in
float64 for years, for the loop clock and the message stamps alike. A message whose header
stamp is zero (unstamped) is given its receipt time instead, so its age is at least the
transport delay; ``ImuReading`` and ``JointState`` stamps are then never older than when
the node saw them.

Joint order: the runtime works in policy order (the contract's ``joint_names``). The
ros2_control controller takes its own order (its ``joints`` parameter); ``JointOrder``
maps one to the other and refuses lists that are not the same joints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Imu
from sensor_msgs.msg import JointState as JointStateMsg
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from sim2real.deploy.robot_state import ImuReading, JointState

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Time) -> int:
    """A ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds (≥ 0) as a ``builtin_interfaces/Time``."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def seconds_to_duration(seconds: float) -> Duration:
    """Seconds (≥ 0) as a ``builtin_interfaces/Duration``."""
    sec, nanosec = divmod(round(seconds * NS_PER_S), NS_PER_S)
    return Duration(sec=int(sec), nanosec=int(nanosec))


def to_seconds(ns: int, epoch_ns: int) -> float:
    """Seconds from ``epoch_ns`` to ``ns``: the runtime's clock."""
    return (int(ns) - int(epoch_ns)) / NS_PER_S


def message_time(stamp: Time, receipt_ns: int, epoch_ns: int) -> float:
    """A message's time on the runtime's clock: its stamp, or its receipt time if unstamped."""
    ns = stamp_to_ns(stamp)
    return to_seconds(ns if ns != 0 else receipt_ns, epoch_ns)


def joint_state_from_msg(msg: JointStateMsg, receipt_ns: int, epoch_ns: int) -> JointState:
    """A ``sensor_msgs/JointState`` as the runtime's by-name ``JointState``.

    The arrays are passed as they are: an empty ``velocity`` (a driver that gives none) is
    a fault the runtime names, not something to guess here. ``effort`` is only checked
    (finite) by the runtime; an empty one means not measured.
    """
    return JointState(
        names=tuple(msg.name),
        position=np.array(msg.position, dtype=np.float64),
        velocity=np.array(msg.velocity, dtype=np.float64),
        stamp=message_time(msg.header.stamp, receipt_ns, epoch_ns),
        effort=np.array(msg.effort, dtype=np.float64) if len(msg.effort) else None,
    )


def imu_from_msg(msg: Imu, receipt_ns: int, epoch_ns: int) -> ImuReading:
    """A ``sensor_msgs/Imu`` as an ``ImuReading`` (quaternion reordered to w, x, y, z).

    Following the message's convention, a covariance whose first entry is -1 marks a field
    the IMU does not give: a missing orientation becomes a NaN quaternion (the runtime
    refuses it by name), a missing linear acceleration becomes ``None``.
    """
    q = msg.orientation
    quat = np.array([q.w, q.x, q.y, q.z], dtype=np.float64)
    if msg.orientation_covariance[0] == -1.0:
        quat[:] = np.nan
    w = msg.angular_velocity
    ang_vel = np.array([w.x, w.y, w.z], dtype=np.float64)
    if msg.angular_velocity_covariance[0] == -1.0:
        ang_vel[:] = np.nan
    a = msg.linear_acceleration
    lin_acc = None
    if msg.linear_acceleration_covariance[0] != -1.0:
        lin_acc = np.array([a.x, a.y, a.z], dtype=np.float64)
    return ImuReading(
        quat=quat,
        ang_vel=ang_vel,
        stamp=message_time(msg.header.stamp, receipt_ns, epoch_ns),
        lin_acc=lin_acc,
    )


def joint_state_msg(
    names: Sequence[str],
    position: np.ndarray,
    velocity: np.ndarray,
    effort: np.ndarray,
    stamp_ns: int,
) -> JointStateMsg:
    """A ``sensor_msgs/JointState`` as a robot driver publishes it (rad, rad/s, N·m)."""
    msg = JointStateMsg(name=list(names))
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.position = position.tolist()
    msg.velocity = velocity.tolist()
    msg.effort = effort.tolist()
    return msg


def imu_msg(
    quat_wxyz: np.ndarray, ang_vel: np.ndarray, lin_acc: np.ndarray, stamp_ns: int, frame: str
) -> Imu:
    """A ``sensor_msgs/Imu`` (orientation from w, x, y, z; rad/s; m/s²), covariances unknown (0)."""
    msg = Imu()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame
    w, x, y, z = (float(v) for v in quat_wxyz)
    q = msg.orientation
    q.w, q.x, q.y, q.z = w, x, y, z
    v = msg.angular_velocity
    v.x, v.y, v.z = (float(c) for c in ang_vel)
    a = msg.linear_acceleration
    a.x, a.y, a.z = (float(c) for c in lin_acc)
    return msg


def twist_to_command(msg: Twist) -> np.ndarray:
    """A ``geometry_msgs/Twist`` as the velocity command (vx m/s, vy m/s, yaw rate rad/s)."""
    return np.array([msg.linear.x, msg.linear.y, msg.angular.z], dtype=np.float64)


def point_to_command(point) -> np.ndarray:
    """A ``geometry_msgs/Point`` (or a ``PointStamped``) as a target (x, y, z), m."""
    point = getattr(point, "point", point)
    return np.array([point.x, point.y, point.z], dtype=np.float64)


class JointOrder:
    """Maps arrays in policy order to the controller's joint order.

    Args:
        policy_joints: the runtime's joint names (policy order).
        command_joints: the controller's ``joints``, in its order; empty: policy order.

    Raises:
        ValueError: ``command_joints`` is not the policy's joints in some order (the message
            names the joints missing and the unknown ones).
    """

    def __init__(self, policy_joints: Sequence[str], command_joints: Sequence[str] = ()):
        policy_joints = list(policy_joints)
        command_joints = list(command_joints) or policy_joints
        if sorted(command_joints) != sorted(policy_joints):
            missing = [n for n in policy_joints if n not in command_joints]
            unknown = [n for n in command_joints if n not in policy_joints]
            repeated = sorted({n for n in command_joints if command_joints.count(n) > 1})
            raise ValueError(
                "command_joints must list the policy's joints once each: "
                f"missing {missing}, unknown {unknown}, repeated {repeated}"
            )
        self.names = tuple(command_joints)
        self.index = np.array([policy_joints.index(n) for n in command_joints], dtype=np.intp)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """``values`` (J,) in policy order → the controller's order."""
        return np.asarray(values, dtype=np.float64)[self.index]


def float64_multi_array(values: np.ndarray, label: str = "joints") -> Float64MultiArray:
    """A ``std_msgs/Float64MultiArray`` with one dimension: forward_command_controller's layout.

    forward_command_controller reads only ``data`` (one value per joint, in its ``joints``
    order); the dimension is there for humans and bag readers.
    """
    data = [float(v) for v in values]
    msg = Float64MultiArray(data=data)
    msg.layout.dim = [MultiArrayDimension(label=label, size=len(data), stride=len(data))]
    return msg


def gains_array(kp: np.ndarray, kd: np.ndarray) -> Float64MultiArray:
    """Kp then Kd (each (J,), the controller's order) as a 2 × J ``Float64MultiArray``."""
    joints = len(kp)
    msg = Float64MultiArray(data=[float(v) for v in (*kp, *kd)])
    msg.layout.dim = [
        MultiArrayDimension(label="gain", size=2, stride=2 * joints),
        MultiArrayDimension(label="joint", size=joints, stride=joints),
    ]
    return msg


def joint_trajectory(
    targets: np.ndarray, joint_names: Sequence[str], stamp_ns: int, time_from_start_s: float
) -> JointTrajectory:
    """One-point ``trajectory_msgs/JointTrajectory``: reach ``targets`` in ``time_from_start_s``.

    ``header.stamp`` is the tick's time: joint_trajectory_controller starts the trajectory
    then, and it is the stamp the loop-timing benchmark reads.
    """
    msg = JointTrajectory(joint_names=list(joint_names))
    msg.header.stamp = ns_to_stamp(stamp_ns)
    point = JointTrajectoryPoint(positions=[float(v) for v in targets])
    point.time_from_start = seconds_to_duration(time_from_start_s)
    msg.points = [point]
    return msg


def format_value(value) -> str:
    """A diagnostics value as text: floats to 6 significant digits, ``None`` as ``""``."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def flatten(values: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested mappings flattened to ``"outer.inner"`` keys."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def diagnostic_array(
    stamp_ns: int,
    name: str,
    level: bytes,
    message: str,
    values: Mapping,
    hardware_id: str = "",
) -> DiagnosticArray:
    """One ``DiagnosticStatus`` in a ``DiagnosticArray``; ``values`` flattened to key/values."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id)
    status.values = [
        KeyValue(key=key, value=format_value(value)) for key, value in flatten(values).items()
    ]
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = ns_to_stamp(stamp_ns)
    return msg


def diagnostic_values(msg: DiagnosticArray, name: str | None = None) -> dict[str, str]:
    """The key/values of the first status (named ``name``, if given) of a DiagnosticArray."""
    for status in msg.status:
        if name is None or status.name == name:
            return {kv.key: kv.value for kv in status.values}
    return {}
