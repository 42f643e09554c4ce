"""Test and benchmark helpers: run nodes as real processes and talk to them over DDS.

- ``ros_environment(domain_id)``: the environment of an isolated run. Every process of a
  test run (the node under test and the test's own rclpy context) uses a ROS_DOMAIN_ID
  unique to the run (``run_domain_id()``: from the pid) and
  ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, so parallel runs on one machine never cross.
- ``NodeProcess``: a node started through its console entry point with a parameters file,
  in its own process group, always killed (SIGINT, then SIGKILL) on exit, and sent
  SIGTERM by the kernel should the process that started it die first (Linux), so a
  crashed test or ``sim2real hil`` leaves no node behind.
- ``RosHarness``: a private rclpy context with an executor spinning in a thread, and
  blocking helpers with timeouts for lifecycle transitions, services and parameters.

Nothing here blocks without a timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import rclpy
import yaml
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger

#: Lifecycle transitions by label.
TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
}


def run_domain_id(offset: int = 0) -> int:
    """A ROS_DOMAIN_ID for this process's run: 1..100 from the pid (0 is everyone's default).

    Domains 1..101 are valid with the default DDS port mapping on Linux.
    """
    return 1 + (os.getpid() + offset) % 100


def ros_environment(domain_id: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: ``os.environ``) with the run's DDS isolation settings."""
    env = dict(os.environ if base is None else base)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        RMW_IMPLEMENTATION=env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("ROS_STATIC_PEERS", None)
    return env


def isolate_this_process(domain_id: int) -> None:
    """Put this process's DDS settings (``ros_environment``) into ``os.environ``.

    The RMW reads the discovery range from the environment when a context is created:
    call this before ``rclpy.init``.
    """
    env = ros_environment(domain_id)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("ROS", "RMW"))})


def console_script(name: str) -> Path:
    """The console entry point ``name`` of this Python environment (``.venv/bin/<name>``)."""
    return Path(sys.executable).parent / name


class _QuotedStrings(yaml.SafeDumper):
    """Strings always quoted: rcl's parser reads a bare ``y``, ``n``, ``on``... as a bool."""


_QuotedStrings.add_representer(
    str, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"')
)


def write_parameters(path: Path, node_name: str, parameters: Mapping[str, object]) -> Path:
    """A ROS 2 parameters YAML file for one node (every string quoted)."""
    document = {node_name: {"ros__parameters": dict(parameters)}}
    path.write_text(yaml.dump(document, Dumper=_QuotedStrings, sort_keys=False))
    return path


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class NodeProcess:
    """A node process started through its console entry point; a context manager.

    Args:
        executable: the console script (``console_script("policy_node")``).
        params_file: a parameters file (``write_parameters``), or ``None``.
        env: the environment (``ros_environment``).
        log_path: where stdout and stderr go.
        ros_args: more arguments after ``--ros-args``.
    """

    def __init__(
        self,
        executable: Path,
        params_file: Path | None,
        env: Mapping[str, str],
        log_path: Path,
        ros_args: Sequence[str] = (),
    ):
        command = [str(executable), "--ros-args", *ros_args]
        if params_file is not None:
            command += ["--params-file", str(params_file)]
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        """What the process wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGINT to the process group, SIGKILL after ``timeout``; returns the exit code."""
        try:
            if self.process.poll() is None:
                self._signal(signal.SIGINT)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.process.wait(timeout)
        finally:
            self._log.close()
        return self.process.returncode

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.01):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` s pass.

    Raises:
        TimeoutError: ``predicate`` stayed falsy.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


class RosHarness:
    """A private rclpy context and node, spun by an executor in a background thread.

    Args:
        domain_id: the run's ROS_DOMAIN_ID.
        node_name: the test node's name.

    Attributes:
        node: the test-side ``rclpy`` node: create publishers and subscriptions on it.
    """

    def __init__(self, domain_id: int, node_name: str = "sim2real_test_harness"):
        isolate_this_process(domain_id)
        self.context = rclpy.Context()
        rclpy.init(
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.node = rclpy.create_node(node_name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._clients: dict[tuple, object] = {}

    def _spin(self) -> None:
        with contextlib.suppress(Exception):  # the context was shut down under the executor
            self.executor.spin()

    def close(self) -> None:
        """Stop the executor and shut the context down."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> RosHarness:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def now_ns(self) -> int:
        """The test node's clock, ns."""
        return self.node.get_clock().now().nanoseconds

    def client(self, srv_type, name: str, timeout: float = 5.0):
        """The (cached) client of a service, once the service is available.

        Raises:
            TimeoutError: the service did not appear within ``timeout`` s.
        """
        key = (srv_type, name)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, name)
        client = self._clients[key]
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} not available within {timeout} s")
        return client

    def call(self, srv_type, name: str, request=None, timeout: float = 5.0):
        """Call a service and return its response.

        Raises:
            TimeoutError: the service did not appear or answer within ``timeout`` s.
        """
        client = self.client(srv_type, name, timeout)
        future = client.call_async(srv_type.Request() if request is None else request)
        wait_for(future.done, timeout)
        return future.result()

    def change_state(self, node: str, transition: str, timeout: float = 10.0) -> bool:
        """Request a lifecycle transition (``configure``, ``activate``...); its success."""
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        return self.call(ChangeState, f"/{node}/change_state", request, timeout).success

    def lifecycle_state(self, node: str, timeout: float = 5.0) -> str:
        """The node's lifecycle state label (``unconfigured``, ``inactive``, ``active``...)."""
        return self.call(GetState, f"/{node}/get_state", None, timeout).current_state.label

    def trigger(self, name: str, timeout: float = 5.0) -> Trigger.Response:
        """Call a ``std_srvs/Trigger`` service."""
        return self.call(Trigger, name, None, timeout)

    def set_parameters(
        self, node: str, values: Mapping[str, object], timeout: float = 5.0
    ) -> list[tuple[bool, str]]:
        """Set parameters of ``node``; ``(successful, reason)`` per parameter."""
        request = SetParameters.Request()
        request.parameters = [
            Parameter(name, value=value).to_parameter_msg() for name, value in values.items()
        ]
        response = self.call(SetParameters, f"/{node}/set_parameters", request, timeout)
        return [(r.successful, r.reason) for r in response.results]
