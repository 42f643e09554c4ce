"""The sim2real_ros ament_python package: ``colcon build`` or ``pip install``."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "sim2real_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    # rclpy and the messages come from ROS (or the ros-jazzy-* wheels); sim2real from pip.
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="sim2real maintainers",
    maintainer_email="maintainers@users.noreply.h-seed-99f3dd71.example",
    description="Lifecycle policy node over the ROS-free sim2real deploy runtime",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_node = sim2real_ros.policy_node:main",
            "sim_robot_node = sim2real_ros.sim_robot_node:main",
        ],
    },
)
