"""Two-step training in one `model.fit`: binary activations with real weights, then binary weights.

The phase, weight decay and learning rate are all derived from the epoch number and the
step within it, so resuming (`initial_epoch`, `BackupAndRestore`, a restarted process) lands in
the right phase at the right learning rate without any state of the callback's own.
"""

import math

import tensorflow as tf

from bcnn_keras.layers import get_phase, set_phase
from bcnn_keras.training.config import PHASE1_WEIGHT_DECAY, WARMUP_EPOCHS


def _inner_optimizer(optimizer):
    # Mixed precision wraps the optimizer in a LossScaleOptimizer.
    return getattr(optimizer, "inner_optimizer", optimizer)


class TwoStepTraining(tf.keras.callbacks.Callback):
    """Switches phase 1 -> 2 at the epoch boundary and schedules learning rate and weight decay.

    Phase 1 (`phase1_epochs`) trains binary activations with real-valued weights, with weight
    decay `phase1_weight_decay`; phase 2 (`phase2_epochs`) binarizes the weights, starting from
    the phase-1 weights, with `phase2_weight_decay`. Within each phase the learning rate warms up
    linearly over `warmup_epochs` to its peak (`learning_rate`, default the optimizer's, and
    `phase2_learning_rate` in phase 2, default the same) and then decays linearly to 0
    (`decay="linear"`), follows a half cosine (`"cosine"`) or stays constant (`None`). A lower
    phase-2 peak flips fewer of the weight signs learnt in phase 1.

    Weight decay is decoupled (`kernel -= lr * decay * kernel` after each step) and applies to
    the conv kernels (for binary convs, their latent weights). The optimizer must be a
    `tf.keras.optimizers.Optimizer` with a float learning rate. The callback writes `phase` and
    `learning_rate` into the epoch logs: put it before `TensorBoard` or `CSVLogger` in the
    callbacks list so that they record them (`History` always does).

    Example:
        >>> images = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
        >>> train = tf.data.Dataset.from_tensor_slices((images, [0, 1, 2, 3])).batch(4)
        >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        >>> two_step = bcnn_keras.callbacks.TwoStepTraining(phase1_epochs=1, phase2_epochs=1)
        >>> history = model.fit(train, epochs=two_step.epochs, callbacks=[two_step], verbose=0)
        >>> history.history["phase"]
        [1, 2]
    """

    def __init__(
        self,
        phase1_epochs,
        phase2_epochs,
        *,
        learning_rate=None,
        phase2_learning_rate=None,
        phase1_weight_decay=PHASE1_WEIGHT_DECAY,
        phase2_weight_decay=0.0,
        warmup_epochs=WARMUP_EPOCHS,
        decay="linear",
        reset_optimizer=False,
    ):
        super().__init__()
        if phase1_epochs < 0 or phase2_epochs < 0 or phase1_epochs + phase2_epochs < 1:
            raise ValueError("phase1_epochs and phase2_epochs must be >= 0 and not both 0")
        if decay not in ("linear", "cosine", None):
            raise ValueError(f"decay must be 'linear', 'cosine' or None, got {decay!r}")
        self.phase1_epochs = int(phase1_epochs)
        self.phase2_epochs = int(phase2_epochs)
        self.learning_rate = learning_rate
        self.phase2_learning_rate = phase2_learning_rate
        self.weight_decays = {1: phase1_weight_decay, 2: phase2_weight_decay}
        self.warmup_epochs = warmup_epochs
        self.decay = decay
        self.reset_optimizer = reset_optimizer
        self.phase = None

    @property
    def epochs(self):
        """The `epochs` to pass to `fit`: both phases."""
        return self.phase1_epochs + self.phase2_epochs

    def phase_of_epoch(self, epoch):
        return 1 if epoch < self.phase1_epochs else 2

    def learning_rate_at(self, epoch, fraction=0.0):
        """The learning rate at `fraction` (0..1) of the way through `epoch`."""
        phase = self.phase_of_epoch(epoch)
        start, length = (0, self.phase1_epochs) if phase == 1 else (self.phase1_epochs, self.phase2_epochs)
        peak = self.learning_rate
        if phase == 2 and self.phase2_learning_rate is not None:
            peak = self.phase2_learning_rate
        progress = (epoch - start + fraction) / max(length, 1)
        warmup = self.warmup_epochs / max(length, 1)
        if warmup and progress < warmup:
            return peak * progress / warmup
        remaining = (progress - warmup) / max(1.0 - warmup, 1e-12)
        if self.decay == "linear":
            factor = 1.0 - remaining
        elif self.decay == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * remaining))
        else:
            factor = 1.0
        return peak * max(factor, 0.0)

    def _phased_model(self):
        # A distillation wrapper trains its student; the teacher keeps its own weights.
        return getattr(self.model, "student", self.model)

    def on_train_begin(self, logs=None):
        optimizer = _inner_optimizer(self.model.optimizer)
        if not isinstance(optimizer, tf.keras.optimizers.Optimizer) or callable(optimizer.learning_rate):
            raise ValueError(
                "TwoStepTraining needs a tf.keras.optimizers.Optimizer with a float learning rate "
                "(it schedules the learning rate itself)"
            )
        if self.learning_rate is None:
            self.learning_rate = float(tf.keras.backend.get_value(optimizer.learning_rate))
        model = self._phased_model()
        get_phase(model)  # fails early on a model without binary kernels
        kernels = [v for v in model.trainable_variables if "kernel" in v.name]

        @tf.function
        def decay_kernels(factor):
            for kernel in kernels:
                kernel.assign_sub(kernel * factor)

        self._decay_kernels = decay_kernels

    def on_epoch_begin(self, epoch, logs=None):
        phase = self.phase_of_epoch(epoch)
        switching = self.phase is not None and phase != self.phase
        self.phase = phase
        set_phase(self._phased_model(), phase)
        if switching and self.reset_optimizer:
            self._reset_optimizer_slots()
        self._epoch = epoch
        self._set_learning_rate(epoch, 0.0)

    def on_train_batch_begin(self, batch, logs=None):
        steps = self.params.get("steps") or 0
        if steps:
            self._set_learning_rate(self._epoch, batch / steps)

    def on_train_batch_end(self, batch, logs=None):
        weight_decay = self.weight_decays[self.phase]
        if weight_decay:
            self._decay_kernels(tf.constant(weight_decay * self._learning_rate_now, tf.float32))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["phase"] = self.phase
            logs["learning_rate"] = self._learning_rate_now

    def _set_learning_rate(self, epoch, fraction):
        # Kept on the Python side too, so the per-batch decay needs no read back from the device.
        self._learning_rate_now = self.learning_rate_at(epoch, fraction)
        _inner_optimizer(self.model.optimizer).learning_rate.assign(self._learning_rate_now)

    def _reset_optimizer_slots(self):
        optimizer = _inner_optimizer(self.model.optimizer)
        for variable in optimizer.variables:
            if variable is not optimizer.iterations and variable is not optimizer.learning_rate:
                variable.assign(tf.zeros_like(variable))

    def get_config(self):
        return {
            "phase1_epochs": self.phase1_epochs,
            "phase2_epochs": self.phase2_epochs,
            "learning_rate": self.learning_rate,
            "phase2_learning_rate": self.phase2_learning_rate,
            "phase1_weight_decay": self.weight_decays[1],
            "phase2_weight_decay": self.weight_decays[2],
            "warmup_epochs": self.warmup_epochs,
            "decay": self.decay,
            "reset_optimizer": self.reset_optimizer,
        }
