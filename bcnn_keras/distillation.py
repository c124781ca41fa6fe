"""Knowledge distillation from a float teacher, inside the same `model.fit` (ReActNet's recipe).

The distributional loss is the cross-entropy between the teacher's softmax and the student's
log-softmax, `-sum_k softmax(t)_k * log_softmax(s)_k`, optionally mixed with the label loss.
"""

import tensorflow as tf

_register = tf.keras.utils.register_keras_serializable(package="bcnn_keras")


def _log_probabilities(outputs, from_logits):
    if from_logits:
        return tf.nn.log_softmax(outputs, axis=-1)
    return tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0))


def distributional_loss(teacher_outputs, student_outputs, from_logits=False):
    """Per-example cross-entropy between the teacher's and the student's class distributions.

    With `from_logits=False` both are probabilities (softmax outputs, the bcnn_keras default);
    with `from_logits=True` both are logits.

    Example:
        >>> distributional_loss(tf.constant([[0.0, 1.0]]), tf.constant([[0.5, 0.5]])).numpy()
        array([0.6931472], dtype=float32)
    """
    teacher_outputs = tf.cast(teacher_outputs, tf.float32)
    student_outputs = tf.cast(student_outputs, tf.float32)
    teacher_probabilities = tf.nn.softmax(teacher_outputs) if from_logits else teacher_outputs
    return -tf.reduce_sum(
        tf.stop_gradient(teacher_probabilities) * _log_probabilities(student_outputs, from_logits),
        axis=-1,
    )


@_register
class DistributionalLoss(tf.keras.losses.Loss):
    """`distributional_loss` as a Keras loss: `y_true` is the teacher's output.

    Example:
        >>> loss = DistributionalLoss()
        >>> float(loss(tf.constant([[0.2, 0.8]]), tf.constant([[0.2, 0.8]])))  # entropy of (0.2, 0.8)
        0.500402...
    """

    def __init__(self, from_logits=False, name="distributional_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        return distributional_loss(y_true, y_pred, from_logits=self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class Distiller(tf.keras.Model):
    """Trains `student` against a frozen `teacher`'s soft outputs (and optionally the labels).

    The training loss is `alpha * distributional + (1 - alpha) * compiled_loss(labels)`; metrics
    and evaluation are the student's against the labels. Save `distiller.student`, not the
    wrapper. `TwoStepTraining` switches the student's phase, never the teacher's. Training batches
    may carry the teacher's outputs, `(images, (labels, teacher_outputs))` as
    `data.make_dataset(..., teacher=teacher)` makes them; the teacher then does not run per step.

    Example:
        >>> images = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
        >>> train = tf.data.Dataset.from_tensor_slices((images, [0, 1, 2, 3])).batch(4)
        >>> teacher = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25, binary=False)
        >>> student = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> distiller = Distiller(student, teacher, alpha=1.0)
        >>> distiller.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> history = distiller.fit(train, epochs=1, verbose=0)
        >>> distiller.student.save("student.keras")
    """

    def __init__(self, student, teacher, alpha=1.0, from_logits=False, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.alpha = alpha
        self.from_logits = from_logits
        self._loss_tracker = tf.keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        # Our own loss tracker replaces the compiled loss's, which sees only the label loss.
        return [self._loss_tracker, *(self.compiled_metrics.metrics if self.compiled_metrics else [])]

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def train_step(self, data):
        images, labels, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(labels, (tuple, list)):
            labels, teacher_outputs = labels
        else:
            teacher_outputs = self.teacher(images, training=False)
        with tf.GradientTape() as tape:
            student_outputs = self.student(images, training=True)
            loss = self.alpha * tf.reduce_mean(distributional_loss(teacher_outputs, student_outputs, self.from_logits))
            if self.alpha < 1.0:
                loss += (1.0 - self.alpha) * self.compiled_loss(labels, student_outputs, sample_weight)
            loss += tf.add_n(self.student.losses) if self.student.losses else 0.0
        self.optimizer.minimize(loss, self.student.trainable_variables, tape=tape)
        return self._update_metrics(loss, labels, student_outputs, sample_weight)

    def test_step(self, data):
        """Evaluates the student alone: `loss` is its label loss."""
        images, labels, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        outputs = self.student(images, training=False)
        loss = self.compiled_loss(labels, outputs, sample_weight, regularization_losses=[])
        return self._update_metrics(loss, labels, outputs, sample_weight)

    def _update_metrics(self, loss, labels, outputs, sample_weight):
        self._loss_tracker.update_state(loss)
        self.compiled_metrics.update_state(labels, outputs, sample_weight)
        return {metric.name: metric.result() for metric in self.metrics}
