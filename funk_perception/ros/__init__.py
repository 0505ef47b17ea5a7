"""ROS 2 side of funk: the keypoint node and the plain functions it and the bag tool share.

Only :mod:`funk_perception.ros.keypoint_node` imports rclpy; ``convert``,
``pipeline``, ``messages``, ``params`` and ``sync`` work (and are tested)
without a ROS graph. Topics, parameters and message layouts: docs/ROS.md.
"""
