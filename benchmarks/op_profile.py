"""Where a converted model's latency goes: every op of the flatbuffer timed on its own.

LCE's Python interpreter has no op profiler (its C++ wrapper offers `predict` only), so each op
is cut out of the flatbuffer into a graph of its own and timed on the interpreter settings of
the whole model. `profile_models()` returns, per model, the op times, their sums by category and
the coverage (sum of the parts over the whole model's latency); `print_profiles()` tables the
models side by side.
"""

import copy

import bcnn_keras  # noqa: F401  (sets up Keras 2 before anything touches tf.keras)
import flatbuffers
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

from bcnn_keras import export
from common import interleaved_latencies

METHOD = (
    "Each op of the converted flatbuffer is cut out into a graph of its own (the same op, options, "
    "shapes and constants; its other inputs become the graph's inputs) and timed on the same "
    "interpreter settings as the whole model. Each op's graph is paired with a graph that has the "
    "same inputs and outputs but no op, whose median (the copies in and out of Python) is "
    "subtracted. All these graphs and the whole models are timed in the same interleaved rounds, so "
    "a slow spell of the machine is spread over all of them. Coverage is the sum of the parts over "
    "the whole model's median from those rounds; the remainder (the cache state between ops, "
    "per-invoke overhead, noise) is left visible."
)
# Categories in table order; every op falls in exactly one.
INPUT_PATH = "input path"
BINARY_CONV = "binary conv"
QUANTIZE = "LceQuantize between layers"
ELEMENTWISE = "element-wise float"
POOLING = "pooling"
CHANNELS = "channel duplication"
FLOAT_MATRIX = "float conv/dense"
CLASSIFIER = "classifier (global pool to softmax)"
OTHER = "other"
CATEGORIES = (INPUT_PATH, BINARY_CONV, QUANTIZE, ELEMENTWISE, POOLING, CHANNELS, FLOAT_MATRIX, CLASSIFIER, OTHER)
OPS_OF_CATEGORY = {
    QUANTIZE: {"LceQuantize", "LceDequantize"},
    ELEMENTWISE: {
        "ADD",
        "SUB",
        "MUL",
        "DIV",
        "PRELU",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "LEAKY_RELU",
        "MAXIMUM",
        "MINIMUM",
        "TANH",
        "LOGISTIC",
        "HARD_SWISH",
        "ABS",
        "NEG",
        "SQUARED_DIFFERENCE",
    },
    POOLING: {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "MEAN"},
    CHANNELS: {"TILE", "STRIDED_SLICE", "SLICE", "CONCATENATION", "PAD", "PADV2", "GATHER", "SPLIT", "SPLIT_V"},
    FLOAT_MATRIX: set(export.FLOAT_MATRIX_OPS),
}


def profile_models(flatbuffers, settings, runs, rounds):
    """The op profile of every flatbuffer (a dict name -> bytes), by op and by category.

    Every op's graphs and the whole models are timed in the same rounds; `settings`, `runs` and
    `rounds` are those of `common.interleaved_latencies`. Per model: the per-op table with each
    op's Keras layers (`ops`), the categories with their rows (`categories`), ms by op type
    (`op_types`), `parts_ms`, `whole_ms` and `coverage`.
    """
    models = {name: export.read_flatbuffer(flatbuffer) for name, flatbuffer in flatbuffers.items()}
    graphs = {}
    for name, model_t in models.items():
        graphs[name, "whole"] = flatbuffers[name]
        for index in range(len(model_t.subgraphs[0].operators)):
            graphs[name, index, "op"] = _one_op_graph(model_t, index)
            graphs[name, index, "copies"] = _one_op_graph(model_t, index, with_op=False)
    latencies = interleaved_latencies(graphs, settings, runs, rounds)
    medians = {key: latency["median_ms"] for key, latency in latencies.items()}
    return {name: _profile(name, model_t, medians) for name, model_t in models.items()}


def _profile(name, model_t, medians):
    """One model's profile from the medians of `profile_models`' graphs."""
    graph = model_t.subgraphs[0]
    ops = []
    for index, (category, row) in enumerate(_classify(model_t, graph)):
        operator = graph.operators[index]
        output = graph.tensors[operator.outputs[0]]
        copies_ms = medians[name, index, "copies"]
        ops.append(
            {
                "index": index,
                "op": export.op_name(model_t, operator),
                "category": category,
                "row": row,
                "layers": _layer_names(output.name.decode(errors="replace")),
                "output_shape": [int(d) for d in output.shape],
                "ms": medians[name, index, "op"] - copies_ms,  # the copies in and out of Python are no op's time
                "copies_ms": copies_ms,
            }
        )
    parts_ms, whole_ms = sum(op["ms"] for op in ops), medians[name, "whole"]
    return {
        "ops": ops,
        "categories": _by_category(ops, parts_ms),
        "op_types": _ms_by_op_type(ops),
        "parts_ms": parts_ms,
        "whole_ms": whole_ms,
        "coverage": parts_ms / whole_ms,
    }


def _classify(model_t, graph):
    """`(category, row label)` of every op. Position decides the input path (everything before
    the first conv) and the classifier (everything after the last op with a spatial output)."""
    names = [export.op_name(model_t, operator) for operator in graph.operators]
    matrix_ops = {export.BINARY_CONV_OP, *export.FLOAT_MATRIX_OPS}
    first_conv = next((i for i, name in enumerate(names) if name in matrix_ops), 0)
    spatial = [i for i, operator in enumerate(graph.operators) if _is_spatial(graph.tensors[operator.outputs[0]])]
    head_start = spatial[-1] + 1 if spatial else len(names)
    for index, name in enumerate(names):
        if index < first_conv:
            yield INPUT_PATH, name
        elif index >= head_start:
            yield CLASSIFIER, name
        elif name == export.BINARY_CONV_OP:
            yield BINARY_CONV, _bconv_label(graph, graph.operators[index])
        else:
            category = next((c for c, members in OPS_OF_CATEGORY.items() if name in members), OTHER)
            yield category, name


def _is_spatial(tensor):
    """A map larger than 1x1: global pooling's output is where the classifier starts."""
    shape = list(tensor.shape)
    return len(shape) == 4 and shape[1] * shape[2] > 1


def _bconv_label(graph, operator):
    """E.g. "bconv 3x3 s2 64->128": kernel, stride and channels of an `LceBconv2d`."""
    filters, height, width, _ = graph.tensors[operator.inputs[1]].shape
    options = flexbuffers.Loads(bytes(operator.customOptions))
    return f"bconv {height}x{width} s{options['stride_height']} {options['channels_in']}->{filters}"


def _layer_names(tensor_name):
    """The Keras layers in a converted tensor's name ("model/layer/op;model/other/op"), or the
    name itself. TFLite cuts long names: a last part without "model/layer/" is a fragment."""
    layers = [part.split("/")[1] for part in tensor_name.split(";") if part.count("/") >= 2]
    return list(dict.fromkeys(layers)) or [tensor_name]


def _by_category(ops, parts_ms):
    categories = {}
    for op in ops:
        category = categories.setdefault(op["category"], {"ms": 0.0, "ops": 0, "rows": {}})
        row = category["rows"].setdefault(op["row"], {"ms": 0.0, "ops": 0})
        for entry in (category, row):
            entry["ms"] += op["ms"]
            entry["ops"] += 1
    for category in categories.values():
        for entry in (category, *category["rows"].values()):
            entry["share"] = entry["ms"] / parts_ms
    return {name: categories[name] for name in CATEGORIES if name in categories}


def _ms_by_op_type(ops):
    totals = {}
    for op in ops:
        totals[op["op"]] = totals.get(op["op"], 0.0) + op["ms"]
    return totals


def _one_op_graph(model_t, index, with_op=True):
    """A flatbuffer holding op `index` of `model_t`'s main graph alone (or, without the op, only
    its tensors: a graph that just copies the same inputs in and outputs out)."""
    graph = model_t.subgraphs[0]
    operator = graph.operators[index]
    is_constant = lambda i: model_t.buffers[graph.tensors[i].buffer].data is not None  # noqa: E731
    used = list(dict.fromkeys(i for i in (*operator.inputs, *operator.outputs) if i >= 0))
    new_index = {old: new for new, old in enumerate(used)}
    tensors, buffers = [], [schema.BufferT()]  # buffer 0: the empty buffer of every non-constant
    for old in used:
        tensor = copy.copy(graph.tensors[old])
        tensor.buffer = len(buffers) if is_constant(old) else 0
        if is_constant(old):
            buffers.append(model_t.buffers[graph.tensors[old].buffer])
        tensors.append(tensor)
    op = copy.copy(operator)
    op.inputs = [new_index.get(i, -1) for i in operator.inputs]
    op.outputs = [new_index[i] for i in operator.outputs]
    subgraph = schema.SubGraphT()
    subgraph.tensors = tensors
    subgraph.inputs = [new_index[i] for i in dict.fromkeys(operator.inputs) if i >= 0 and not is_constant(i)]
    subgraph.outputs = op.outputs
    subgraph.operators = [op] if with_op else []
    model = schema.ModelT()
    model.version, model.operatorCodes = model_t.version, model_t.operatorCodes
    model.buffers, model.subgraphs = buffers, [subgraph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def print_profiles(profiles):
    """One table, a column pair (ms, share of the parts) per model: categories, then their rows."""
    names = list(profiles)
    print(f"{'op profile (ms, share of parts)':40s}" + "".join(f"{name:>16s}" for name in names))
    for category in CATEGORIES:
        found = [profiles[name]["categories"].get(category) for name in names]
        if not any(found):
            continue
        print(f"{category:40s}" + "".join(_cell(entry) for entry in found))
        rows = list(dict.fromkeys(row for entry in found if entry for row in entry["rows"]))
        for row in rows:
            cells = [entry and entry["rows"].get(row) for entry in found]
            print(f"  {row:38s}" + "".join(_cell(cell) for cell in cells))
    for label, key in (("sum of parts", "parts_ms"), ("whole model (same rounds)", "whole_ms")):
        print(f"{label:40s}" + "".join(f"{profiles[name][key]:9.2f}       " for name in names))
    print(f"{'coverage (parts / whole)':40s}" + "".join(f"{profiles[name]['coverage']:15.0%} " for name in names))


def _cell(entry):
    """ms and share in 16 characters; a dash where the model has no such op."""
    return f"{entry['ms']:9.2f} {entry['share']:5.1%} " if entry else f"{'-':>9s}       "
