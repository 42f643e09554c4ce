"""The sysid report: PNG figures and one HTML page with the parameter table.

``write_report(identification, folder, truth=None)`` writes:

- ``fit.png``: per joint, the drive torque of one replayed window as logged, as the MJCF's
  model predicts it, and as the identified model does (fixed-base fits only);
- ``delay.png``: the motor fit's residual over the candidate delays;
- ``sysid.html``: the two figures, the table of every identified value with its 95 %
  interval (the links' base parameters included), and on an arm the links' masses
  and centres of mass, those the data determine marked (and the truth, with the relative
  error, when it is known: HIL profiles).
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim2real.sysid.identify import Identification  # noqa: E402
from sim2real.sysid.validation import true_inertial  # noqa: E402


def write_report(
    identification: Identification, folder: str | Path, truth: dict | None = None
) -> Path:
    """Write the figures and the page into ``folder``; returns the page's path.

    Args:
        identification: what ``identify`` found.
        folder: created if missing.
        truth: parameter → (J,) true values (``RobotProfile.resolve()``), and
            ``delay_s``; compared in the table where given.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = [_delay_figure(identification, folder / "delay.png")]
    if identification.trajectory is not None:
        figures.insert(0, _fit_figure(identification, folder / "fit.png"))
    page = folder / "sysid.html"
    page.write_text(_page(identification, figures, truth))
    return page


def _fit_figure(identification: Identification, path: Path) -> Path:
    curves = identification.trajectory.curves
    joints = identification.joint_names
    columns = 4 if len(joints) > 8 else 2
    rows = int(np.ceil(len(joints) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 2.2 * rows), squeeze=False)
    for j, (axis, name) in enumerate(zip(axes.flat, joints, strict=False)):
        axis.plot(curves["t"], curves["measured"][:, j], color="black", lw=1.2, label="logged")
        axis.plot(curves["t"], curves["nominal"][:, j], color="tab:red", lw=0.9, label="MJCF")
        axis.plot(
            curves["t"], curves["identified"][:, j], "--", color="tab:blue", lw=0.9,
            label="identified",
        )  # fmt: skip
        axis.set_title(name, fontsize=9)
        axis.set_ylabel("torque, N·m", fontsize=8)
    for axis in axes.flat[len(joints) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle("Drive torque over one replayed window: logged, MJCF model, identified model")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _delay_figure(identification: Identification, path: Path) -> Path:
    motor = identification.motor
    dt = identification.delay_half_width_s
    delays = (np.arange(len(motor.costs)) + 1) * dt * 1e3
    figure, axis = plt.subplots(figsize=(6, 3))
    axis.plot(delays, motor.costs, "o-")
    axis.axvline(identification.delay_s * 1e3, color="tab:red", label="identified")
    axis.set_xlabel("command delay, ms")
    axis.set_ylabel("relative torque residual")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _page(identification: Identification, figures: list[Path], truth: dict | None) -> str:
    images = "".join(f'<p><img src="{p.name}" alt="{p.stem}"></p>' for p in figures)
    trajectory = identification.trajectory
    summary = (
        f"{identification.robot}: {identification.log_seconds:.1f} s of log; "
        f"delay {identification.delay_s * 1e3:.1f} ms"
    )
    if trajectory is not None:
        summary += (
            f"; trajectory fit in {trajectory.seconds:.1f} s ({trajectory.evaluations} "
            f"evaluations), torque rms {trajectory.effort_rms_before.mean():.3g} → "
            f"{trajectory.effort_rms_after.mean():.3g} N·m"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>sim2real sysid</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
        f"<h1>System identification</h1><p>{html.escape(summary)}</p>{images}"
        f"{parameter_table(identification, truth)}</body></html>"
    )


def parameter_table(identification: Identification, truth: dict | None = None) -> str:
    """The parameter table as HTML (the sysid page's, and the pipeline report's).

    What could not be identified (``notes``), every identified value with its 95 %
    interval (and the truth and the error, when ``truth`` is given), then on an arm the
    links' masses and centres of mass.
    """
    inertial_truth = None
    if identification.inertial is not None and truth is not None:
        inertial_truth = true_inertial(identification.inertial, truth["link_mass_scale"])
        truth = {**truth, "base_parameter": dict(
            zip(identification.inertial.labels, inertial_truth["beta"], strict=True)
        )}  # fmt: skip
    rows = []
    for row in identification.table():
        true_value = _truth(truth, row, identification.joint_names)
        cells = [
            row["parameter"], row["joint"], f"{row['value']:.5g}",
            f"[{row['low']:.5g}, {row['high']:.5g}]",
        ]  # fmt: skip
        if truth is not None:
            error = "" if true_value is None else f"{100 * (row['value'] / true_value - 1):+.1f} %"
            cells += ["" if true_value is None else f"{true_value:.5g}", error]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    header = ["parameter", "joint", "identified", "95 % interval"]
    if truth is not None:
        header += ["truth", "error"]
    head = "".join(f"<th>{h}</th>" for h in header)
    notes = "".join(f"<p><b>Note:</b> {html.escape(note)}</p>" for note in identification.notes)
    return (
        f"{notes}<table><tr>{head}</tr>{''.join(rows)}</table>"
        f"{_links_section(identification, inertial_truth)}"
    )


def _links_section(identification: Identification, truth: dict | None) -> str:
    """The links' masses and centres of mass, intervals, and which the data determine.

    Values the data leave open are the ones closest to the MJCF's (``InertialFit``).
    """
    fit = identification.inertial
    if fit is None:
        return ""
    header = ["link", "mass, kg", "95 % interval", "determined", "centre of mass, m",
              "95 % intervals", "determined (x, y, z)"]  # fmt: skip
    if truth is not None:
        header += ["true mass", "true centre of mass"]
    rows = []
    for k, link in enumerate(fit.link_names):
        low, high = fit.masses_interval[k]
        cells = [
            link, f"{fit.masses[k]:.4g}", f"[{low:.4g}, {high:.4g}]",
            "yes" if fit.mass_determined[k] else "no",
            ", ".join(f"{c:.4g}" for c in fit.coms[k]),
            " ".join(f"[{lo:.3g}, {hi:.3g}]" for lo, hi in fit.coms_interval[k]),
            ", ".join("yes" if d else "no" for d in fit.com_determined[k]),
        ]  # fmt: skip
        if truth is not None:
            cells += [f"{truth['masses'][k]:.4g}", ", ".join(f"{c:.4g}" for c in truth["coms"][k])]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    significant = int(fit.significant().sum())
    note = (
        f"{len(fit.beta)} base parameters identified from {int(fit.samples.min())}+ samples "
        f"per joint ({significant} carry at least 5 % of a joint's rms effort), torque "
        f"residual rms {fit.residual_rms.mean():.3g} N·m. Masses and centres of mass marked "
        "'no' are not determined by joint torques (a mass at a joint's origin acts alike on "
        "either link): they are the values closest to the MJCF's that reproduce the base "
        "parameters, with their intervals."
    )
    head = "".join(f"<th>{h}</th>" for h in header)
    return (
        f"<h2>Links: masses and centres of mass</h2><p>{html.escape(note)}</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def _truth(truth: dict | None, row: dict, joints: tuple[str, ...]) -> float | None:
    if truth is None:
        return None
    if row["parameter"] == "delay_s":
        return truth.get("delay_s")
    if row["parameter"] == "link_mass_scale":
        return truth.get("link_mass_scale")
    if row["parameter"] in ("base_parameter", "link_mass"):
        return truth.get(row["parameter"], {}).get(row["joint"])
    values = truth.get(row["parameter"])
    return None if values is None else float(values[joints.index(row["joint"])])
