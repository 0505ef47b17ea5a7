"""ROS 2 side of funk: the keypoint node and the plain functions it and the bag tool share.

Only :mod:`funk_perception.ros.keypoint_node`, ``declare`` (its parameter
declaration) and ``client`` (the tests' and demo's other end) import rclpy;
``convert``, ``pipeline``, ``messages``, ``layout``, ``diagnostics``, ``params``,
``roi``, ``sync`` and ``transport`` (the Fast DDS profile, input topic names,
why frames do not arrive) work (and are tested) without a ROS graph. Topics, parameters and message layouts: docs/ROS.md.
"""
