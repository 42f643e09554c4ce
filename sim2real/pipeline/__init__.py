"""``sim2real pipeline``: the whole sim-to-real loop in one run folder.

train → export → HIL (faults, recorded) → sysid → fine-tune → HIL again → report; see
``stages`` for what each stage writes and ``run_folder`` for how a run resumes.
"""
