"""Read and write the few numbers a node needs straight from/to serialized Odometry and Twist.

rclpy's `deserialize_message` builds the whole Python message (~30 us for an
Odometry with its two 36-double covariances) and publishing a message object
converts it (~18 us); a node handling hundreds of robots at 20 Hz only needs
x, y, yaw and the velocities. For classic CDR (what rmw_fastrtps and
rmw_cyclonedds send for these types) the layout is fixed once the two
frame-id strings are skipped, so `struct` reads or packs them in ~1 us and
`Publisher.publish(bytes)` sends them (~3 us). Reading any other
encapsulation falls back to `deserialize_message`, so a middleware that
sends XCDR2 is still read right. test/test_node_helpers.py checks the reader
against `deserialize_message`, and that what the writers produce deserializes
to the intended message.
"""
import math
import struct
from typing import Tuple

from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message

# Encapsulation header (first 2 bytes): classic CDR big-endian / little-endian.
_CDR_BE = b"\x00\x00"
_CDR_LE = b"\x00\x01"
_ENCAPSULATION_BYTES = 4
_POSE_DOUBLES = 7  # position xyz, orientation xyzw
_TWIST_OFFSET_AFTER_POSE = 8 * (7 + 36)  # pose + its covariance


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rotation about z) of a quaternion, in (-pi, pi]."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def _pose_offset(data: bytes, endian: str) -> int:
    """Offset (in `data`) of pose.pose.position.x: skip stamp, frame_id, child_frame_id."""
    offset = 8  # stamp: int32 sec, uint32 nanosec
    for _ in range(2):  # header.frame_id, child_frame_id: uint32 length (with NUL) + bytes
        (length,) = struct.unpack_from(endian + "I", data, _ENCAPSULATION_BYTES + offset)
        offset += 4 + length
        offset = (offset + 3) & ~3
    offset = (offset + 7) & ~7  # doubles are 8-aligned, relative to the payload start
    return _ENCAPSULATION_BYTES + offset


def odometry_state(data: bytes) -> Tuple[float, float, float, float, float]:
    """(x, y, yaw, v, w) of a serialized nav_msgs/Odometry: planar pose and forward/turn rates."""
    head = data[:2]
    if head == _CDR_LE or head == _CDR_BE:
        endian = "<" if head == _CDR_LE else ">"
        at = _pose_offset(data, endian)
        x, y, _, qx, qy, qz, qw = struct.unpack_from(endian + "7d", data, at)
        v, _, _, _, _, w = struct.unpack_from(endian + "6d", data, at + _TWIST_OFFSET_AFTER_POSE)
    else:
        msg = deserialize_message(data, Odometry)
        p, q, t = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
        x, y, qx, qy, qz, qw = p.x, p.y, q.x, q.y, q.z, q.w
        v, w = t.linear.x, t.angular.z
    return x, y, yaw_from_quaternion(qx, qy, qz, qw), v, w


def _header_frame_id(data: bytes, endian: str) -> str:
    """header.frame_id of a serialized message that starts with a std_msgs/Header."""
    (length,) = struct.unpack_from(endian + "I", data, _ENCAPSULATION_BYTES + 8)
    start = _ENCAPSULATION_BYTES + 12
    return data[start:start + length - 1].decode(errors="replace")


def odometry_frame_id(data: bytes) -> str:
    """header.frame_id of a serialized nav_msgs/Odometry: the frame its pose is in."""
    head = data[:2]
    if head == _CDR_LE or head == _CDR_BE:
        return _header_frame_id(data, "<" if head == _CDR_LE else ">")
    return deserialize_message(data, Odometry).header.frame_id


def twist_velocity(data: bytes) -> Tuple[float, float]:
    """(linear.x, angular.z) of a serialized geometry_msgs/Twist."""
    head = data[:2]
    if head == _CDR_LE or head == _CDR_BE:
        v, _, _, _, _, w = struct.unpack_from(("<" if head == _CDR_LE else ">") + "6d", data, _ENCAPSULATION_BYTES)
        return v, w
    msg = deserialize_message(data, Twist)
    return msg.linear.x, msg.angular.z


def twist_stamped_velocity(data: bytes) -> Tuple[float, float]:
    """(twist.linear.x, twist.angular.z) of a serialized geometry_msgs/TwistStamped."""
    head = data[:2]
    if head == _CDR_LE or head == _CDR_BE:
        endian = "<" if head == _CDR_LE else ">"
        (length,) = struct.unpack_from(endian + "I", data, _ENCAPSULATION_BYTES + 8)
        offset = (8 + 4 + length + 7) & ~7  # the doubles are 8-aligned after stamp and frame_id
        v, _, _, _, _, w = struct.unpack_from(endian + "6d", data, _ENCAPSULATION_BYTES + offset)
        return v, w
    msg = deserialize_message(data, TwistStamped)
    return msg.twist.linear.x, msg.twist.angular.z


_ZERO_COVARIANCE = bytes(8 * 36)


def _cdr_string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<I", len(data)) + data


def odometry_frames(frame_id: str, child_frame_id: str) -> bytes:
    """The part of a little-endian Odometry between the stamp and the pose (both frame ids, padding)."""
    block = _cdr_string(frame_id)
    block += bytes(-len(block) % 4) + _cdr_string(child_frame_id)
    return block + bytes(-(8 + len(block)) % 8)  # the pose's doubles start 8-aligned after the 8-byte stamp


def odometry_cdr(frames: bytes, sec: int, nanosec: int, x: float, y: float, qz: float, qw: float,
                 v: float, w: float) -> bytes:
    """A serialized nav_msgs/Odometry (classic CDR, little-endian) of a planar robot, zero covariances."""
    return b"".join((_CDR_LE, b"\0\0", struct.pack("<iI", sec, nanosec), frames,
                     struct.pack("<7d", x, y, 0.0, 0.0, 0.0, qz, qw), _ZERO_COVARIANCE,
                     struct.pack("<6d", v, 0.0, 0.0, 0.0, 0.0, w), _ZERO_COVARIANCE))


def twist_cdr(v: float, w: float) -> bytes:
    """A serialized geometry_msgs/Twist (classic CDR, little-endian) with linear.x = v, angular.z = w."""
    return _CDR_LE + b"\0\0" + struct.pack("<6d", v, 0.0, 0.0, 0.0, 0.0, w)
