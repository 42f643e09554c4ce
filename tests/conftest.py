"""Fixtures shared by the test files."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks: one intra-op thread is much faster on a shared, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def panda_identification():
    """(profile, Identification) of 30 s of excitation of the panda-hidden HIL profile."""
    from sim2real.deploy.hil.profile import load_profile
    from sim2real.deploy.hil.sim_robot import SimRobot
    from sim2real.sysid.excitation import excitation_targets, run_excitation
    from sim2real.sysid.identify import identify, robot_facts

    profile = load_profile("panda-hidden")
    t, targets = excitation_targets(SimRobot(profile).robot, duration_s=30.0)
    log = run_excitation(profile, t, targets)
    return profile, identify(log, robot_facts("panda"), "panda", chunks=12)
