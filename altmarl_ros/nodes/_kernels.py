"""The numba kernels every node process loads before it joins the graph (no rclpy here: the supervisor
imports it too)."""


def warm_up_kernels() -> None:
    """Load the numba kernels the nodes call each decision (zones, ranks, ring controller) now.

    A process's first call of each loads its compiled code from numba's cache (~1 s,
    several under load). In a node process that happens at the first decision, while
    fleet_sim's clock runs on in its own process: the fleet would answer the first
    epochs seconds late (a goal_pose agent, which the lockstep simulator does not wait
    for, took its first GlobalCommand 0.65 s of sim time after its stamp, and so stopped
    its robots 0.5 s late when the coordinator was lost). run_node calls it before the
    node is built, in every node process however started: it delays only start-up.
    """
    import numpy as np

    from altmarl_ros.core.counts import rank
    from altmarl_sim.ring import steer_to_zone, target_zone, zone_of_pose
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario()
    xs = np.zeros(2)
    zones = zone_of_pose(xs, xs, scenario.ring)
    target_zone(zones, zones, scenario.ring)
    steer_to_zone(xs, xs, xs, zones, scenario.ring, scenario.limits, scenario.controller)
    rank(np.bincount(zones, minlength=scenario.ring.n_zones))
