"""Everything the harness knows about individual rules, in one table (the engine and the
rules know nothing of the harness; the probes see a rule only through its `data`)."""

# Fixes proved by replaying a training loop's AMP call order, not by probing a class.
LOOP_REPLAY = {"TL105"}

# Why a rule's fix can be invisible to the probes, when it is.
UNOBSERVABLE = {
    "TL005": "a mutable default whose sharing no probe observed (the default was never mutated)",
}

# Fixes that free code locked to CUDA: on a machine without CUDA, or with --device cpu,
# the CPU probe of the locked code is the failure they remove.
DEVICE_LOCK = {"TL004"}
