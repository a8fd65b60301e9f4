"""markers: what RViz shows (config/altmarl.rviz), as one MarkerArray on altmarl/markers in frame `map`.

- zones: the ring's sectors as one TRIANGLE_LIST, each zone its own colour;
- robots: one SPHERE_LIST, each robot coloured by its local state (zone);
- sampled: the k robots of the last GlobalCommand, as a second, larger SPHERE_LIST;
- depot: a CYLINDER at the depot's pose, with a line to the zone it heads for;
- estimate: the fleet distribution the last decision used (GlobalCommand.estimate: the
  observer's estimate), one radial bar per zone outside the ring, length ESTIMATE_LENGTH
  for the whole fleet in one zone;
- status: text with the epoch, s_g -> a_g, k of n, the observer and the policy id.
The simulated `odom` frame coincides with `map`, so poses are drawn as they come.
"""
import colorsys
import math
import sys

import numpy as np
from altmarl_msgs.msg import GlobalCommand
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from altmarl_ros.names import DEPOT, GLOBAL_COMMAND_TOPIC, MAP_FRAME, MARKERS_TOPIC
from altmarl_ros.node_parameters import NODE_PARAMETERS
from altmarl_ros.nodes._params import declare_float, declare_robots, declare_scenario
from altmarl_ros.nodes._diagnostics import OK, Diagnostics
from altmarl_ros.nodes._poses import declare_pose_source
from altmarl_ros.nodes._ros import MARKERS_QOS, AltmarlNode, run_node
from altmarl_sim.ring import zone_of_pose
from altmarl_ros.nodes._validate import CommandCheck, DroppedMessages, subscribe_commands

SEGMENTS_PER_ZONE = 12
ROBOT_SIZE = 0.06  # m
SAMPLED_SIZE = 0.14  # m
DEPOT_SIZE = 0.25  # m
ESTIMATE_LENGTH = 1.0  # m: the estimate bar of a zone holding the whole fleet


def zone_colours(n_zones: int, alpha: float = 1.0):
    """One distinct colour per zone, evenly spaced in hue."""
    return [ColorRGBA(r=r, g=g, b=b, a=alpha)
            for r, g, b in (colorsys.hsv_to_rgb(z / n_zones, 0.75, 0.9) for z in range(n_zones))]


def zone_triangles(ring, colours):
    """TRIANGLE_LIST points and per-vertex colours covering each zone's sector of the annulus."""
    inner, outer = ring.radius - ring.width / 2, ring.radius + ring.width / 2
    points, vertex_colours = [], []
    for z in range(ring.n_zones):
        angles = np.linspace(z * ring.sector, (z + 1) * ring.sector, SEGMENTS_PER_ZONE + 1)
        for a0, a1 in zip(angles[:-1], angles[1:]):
            corners = [(r * math.cos(a), r * math.sin(a)) for r, a in ((inner, a0), (outer, a0), (outer, a1),
                                                                       (inner, a1))]
            for index in (0, 1, 2, 0, 2, 3):
                points.append(Point(x=corners[index][0], y=corners[index][1], z=-0.01))
                vertex_colours.append(colours[z])
    return points, vertex_colours


class MarkersNode(AltmarlNode):
    """Publishes the fleet's MarkerArray every `marker_period` seconds."""

    DEFAULT_NAME = "markers"
    PARAMETERS = NODE_PARAMETERS["markers"]

    def setup(self) -> None:
        scenario = declare_scenario(self)
        self.ring = scenario.ring
        self.robot_ids, robot_names = declare_robots(self, scenario, "robots to draw")
        period = declare_float(self, "marker_period", 0.2, "s between MarkerArray updates", positive=True)
        self.odom_timeout_ns = int(1e9 * declare_float(
            self, "odom_timeout", 0.5, "s: robots with older odometry are not drawn", positive=True))
        self._slot_of = {rid: slot for slot, rid in enumerate(self.robot_ids)}
        self.dropped = DroppedMessages(self)  # bad GlobalCommand and odometry messages, by reason
        # Robots then the depot, in the map frame (as the coordinator sees them).
        self.poses = declare_pose_source(self, robot_names + [DEPOT], self.dropped)
        self.last_command = None
        n_sg, n_ag, n_sl, _ = scenario.sizes
        subscribe_commands(self, CommandCheck((n_sg, n_ag, n_sl), robot_ids=self.robot_ids), self._on_command,
                           self.dropped)
        self.publisher = self.create_publisher(MarkerArray, MARKERS_TOPIC, MARKERS_QOS)
        self._colours = zone_colours(self.ring.n_zones)
        self._zones_marker = self._marker("zones", Marker.TRIANGLE_LIST, scale=1.0)
        self._zones_marker.points, self._zones_marker.colors = zone_triangles(self.ring,
                                                                              zone_colours(self.ring.n_zones, 0.25))
        self.published = 0
        self.create_timer(period, self.publish_markers)
        self.diagnostics = Diagnostics(self, "markers", self.diagnostic_status, self.dropped)

    def diagnostic_status(self):
        return OK, "drawing", {"marker_arrays": self.published, "robots": len(self.robot_ids)}

    def _on_command(self, msg: GlobalCommand) -> None:
        self.last_command = msg

    def _marker(self, namespace: str, kind: int, scale: float) -> Marker:
        marker = Marker(ns=namespace, id=0, type=kind, action=Marker.ADD, lifetime=Duration())
        marker.header.frame_id = MAP_FRAME
        marker.pose.orientation.w = 1.0
        marker.scale.x = marker.scale.y = marker.scale.z = scale
        marker.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        return marker

    def build(self) -> MarkerArray:
        """The MarkerArray for the current poses and the last GlobalCommand."""
        now_ns = self.get_clock().now().nanoseconds
        stamp = self.get_clock().now().to_msg()
        fresh, poses = self.poses.fresh_poses(now_ns, self.odom_timeout_ns)
        depot_slot = len(self.robot_ids)
        at_depot = fresh == depot_slot
        depot_pose = tuple(poses[at_depot][0]) if at_depot.any() else None
        fresh, poses = fresh[~at_depot], poses[~at_depot]
        robots = self._marker("robots", Marker.SPHERE_LIST, ROBOT_SIZE)
        robots.points = [Point(x=x, y=y) for x, y in poses[:, :2].tolist()]
        robots.colors = [self._colours[z] for z in zone_of_pose(poses[:, 0], poses[:, 1], self.ring).tolist()]
        sampled = self._marker("sampled", Marker.SPHERE_LIST, SAMPLED_SIZE)
        sampled.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=0.6)
        depot = self._marker("depot", Marker.CYLINDER, DEPOT_SIZE)
        depot.scale.z = 0.1
        depot.color = ColorRGBA(r=0.15, g=0.15, b=0.15, a=1.0)
        heading = self._marker("depot_goal", Marker.LINE_LIST, 0.02)
        status = self._marker("status", Marker.TEXT_VIEW_FACING, 0.18)
        status.pose.position.z = 0.3
        command = self.last_command
        if command is not None:
            wanted = [self._slot_of[i] for i in command.sampled_ids if i in self._slot_of]
            sampled.points = [Point(x=x, y=y, z=0.01) for x, y, _ in poses[np.isin(fresh, wanted)].tolist()]
            status.text = (f"epoch {command.epoch}   s_g {command.global_state} -> a_g {command.global_action}   "
                           f"k {command.k} of {len(self.robot_ids)}   observer {command.observer}   "
                           f"policy {command.policy_id[:8]}")
        else:
            status.text = f"waiting for {GLOBAL_COMMAND_TOPIC}"
        markers = [self._zones_marker, robots, sampled, status]
        if command is not None and len(command.estimate) == self.ring.n_zones:
            markers.append(self._estimate_marker(command.estimate))
        if depot_pose is not None:
            depot.pose.position.x, depot.pose.position.y = depot_pose[0], depot_pose[1]
            markers.append(depot)
            if command is not None:
                goal = self.ring.zone_centres()[command.global_action]
                heading.points = [Point(x=depot_pose[0], y=depot_pose[1]), Point(x=goal[0], y=goal[1])]
                markers.append(heading)
        for marker in markers:
            marker.header.stamp = stamp
        return MarkerArray(markers=markers)

    def _estimate_marker(self, estimate) -> Marker:
        """One radial bar per zone, from just outside the ring, as long as the zone's estimated share."""
        bars = self._marker("estimate", Marker.LINE_LIST, 0.05)
        base = self.ring.radius + self.ring.width / 2 + 0.05
        for z, share in enumerate(estimate):
            angle = (z + 0.5) * self.ring.sector
            for radius in (base, base + ESTIMATE_LENGTH * float(share)):
                bars.points.append(Point(x=radius * math.cos(angle), y=radius * math.sin(angle)))
                bars.colors.append(self._colours[z])
        return bars

    def publish_markers(self) -> None:
        self.publisher.publish(self.build())
        self.published += 1


def main(args=None):
    sys.exit(run_node(MarkersNode, args))


if __name__ == "__main__":
    main()
