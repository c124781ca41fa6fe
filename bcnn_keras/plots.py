"""Training curves: loss and accuracy per epoch across both phases (`training.png`)."""

from bcnn_keras.files import atomic_write


def plot_history(records, path, phase1_epochs=None):
    """Plots loss and accuracy per epoch (train and test) to the PNG `path`, with the switch
    from phase 1 to phase 2 marked after `phase1_epochs`.

    `records` are the epoch records of a run's `history.json` (`{"epoch": 0, "loss": ...}`).

    Example:
        >>> records = [{"epoch": 0, "loss": 0.9, "accuracy": 0.7}, {"epoch": 1, "loss": 0.6, "accuracy": 0.8}]
        >>> plot_history(records, "training.png", phase1_epochs=1)
    """
    import matplotlib  # imported here: only plotting needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] + 1 for r in records]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "test")):
            values = [r.get(prefix + metric) for r in records]
            if any(v is not None for v in values):
                axis.plot(epochs, values, marker="o", label=label)
        if phase1_epochs and phase1_epochs < len(records):
            axis.axvline(phase1_epochs + 0.5, color="gray", linestyle="--", label="phase 1 -> 2")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Two-step training: binary activations, then binary weights")
    figure.tight_layout()
    with atomic_write(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
