"""Reads and rewrites `.tflite` flatbuffers (pure functions on bytes).

`minify` removes what the TF 2.21 converter writes but the interpreter does not
need, without touching a weight or an op:

- tensor names (signatures keep their own input/output names, so the signature
  runner still feeds inputs by name);
- the quantization parameters of a sparse constant whose only readers are
  `Densify` ops: the converter writes the per-channel scales (float32) and zero
  points (int64) twice, on the sparse constant and on the dense tensor `Densify`
  makes of it; the kernels that consume the weights read the second copy.

On a dynamic-range int8 MobileNet-V1 (alpha 0.25, 96x96) pruned to 90%, these are
a third of the file.
"""

import dataclasses

import flatbuffers
import numpy as np

_IDENTIFIER = b"TFL3"


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _builtin_code(operator_code):
    # Codes >= 127 live in builtinCode; older files only fill deprecatedBuiltinCode.
    return max(operator_code.builtinCode, operator_code.deprecatedBuiltinCode)


def count_sparse_tensors(content):
    """Number of tensors stored in a sparse format in a `.tflite` flatbuffer."""
    model = _schema().Model.GetRootAsModel(content, 0)
    count = 0
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            if subgraph.Tensors(t).Sparsity() is not None:
                count += 1
    return count


def broken_block_sparse_tensors(content):
    """[(name, shape)] of the block-sparse tensors whose blocked dimension is not a
    multiple of its block size.

    The TF 2.21 converter encodes FullyConnected weights with fewer than 4 input
    features (or e.g. 7 features and 8 units) as 1x4 blocks, keeps only part of the
    values, and the file computes wrong outputs (NaN or garbage; a Densify op does
    not help: the values are gone). Such a file must be converted without the
    sparse encoding.
    """
    model = _schema().Model.GetRootAsModel(content, 0)
    broken = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            sparsity = tensor.Sparsity()
            if sparsity is None or sparsity.BlockMapLength() == 0:
                continue
            shape = [int(d) for d in tensor.ShapeAsNumpy()]
            rank = len(shape)
            for b in range(sparsity.BlockMapLength()):
                block = sparsity.DimMetadata(rank + b).DenseSize()
                if block and shape[sparsity.BlockMap(b)] % block:
                    broken.append(((tensor.Name() or b"").decode(), shape))
                    break
    return broken


# Ops reading a weight tensor, and the index of that input.
_WEIGHT_INPUTS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1,
                  "TRANSPOSE_CONV": 1, "CONV_3D": 1}
# Ops between a stored weight and its reader (sparse encoding, float16 weights).
_WEIGHT_PASS_THROUGH = ("DENSIFY", "DEQUANTIZE")
_NUMPY_TYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8,
                "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32}


@dataclasses.dataclass(frozen=True)
class WeightTensor:
    """A weight tensor as stored in a `.tflite` file: its dense shape, type, entries,
    nonzero entries (of the stored values) and whether it is sparse-encoded."""

    shape: tuple
    dtype: str
    size: int
    nonzero: int
    sparse: bool


def weight_tensors(content):
    """[WeightTensor] of the weights of the Conv/DepthwiseConv/FullyConnected/
    TransposeConv ops of a `.tflite` flatbuffer, as stored (before `Densify` /
    `Dequantize`): what the file holds, e.g. the int8 kernels with BatchNorm folded
    in. A sparse-encoded tensor stores only its kept values (zeros inside 1x16 blocks
    included): its other entries are zeros."""
    schema = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(content, 0)
    codes = [names.get(max(model.OperatorCodes(i).BuiltinCode(),
                           model.OperatorCodes(i).DeprecatedBuiltinCode()))
             for i in range(model.OperatorCodesLength())]
    found = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        producer, readers = {}, []
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            code = codes[op.OpcodeIndex()]
            inputs = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
            if code in _WEIGHT_PASS_THROUGH and inputs:
                for out in op.OutputsAsNumpy():
                    producer[int(out)] = inputs[0]
            if code in _WEIGHT_INPUTS and len(inputs) > _WEIGHT_INPUTS[code]:
                readers.append(inputs[_WEIGHT_INPUTS[code]])
        seen = set()
        for index in readers:
            while index in producer:
                index = producer[index]
            if index < 0 or index in seen:
                continue
            seen.add(index)
            tensor = graph.Tensors(index)
            kind = types.get(tensor.Type())
            data = model.Buffers(tensor.Buffer()).DataAsNumpy()
            if kind not in _NUMPY_TYPES or isinstance(data, int):  # not a constant
                continue
            values = np.frombuffer(data.tobytes(), _NUMPY_TYPES[kind])
            shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
            found.append(WeightTensor(shape, kind.lower(), int(np.prod(shape)),
                                      int(np.count_nonzero(values)),
                                      tensor.Sparsity() is not None))
    return found


def count_variable_tensors(content):
    """Number of variable tensors in a `.tflite` flatbuffer: state the interpreter
    keeps from one invocation to the next (e.g. the hidden and cell state of a
    UNIDIRECTIONAL_SEQUENCE_LSTM) until `Interpreter.reset_all_variables()`."""
    model = _schema().Model.GetRootAsModel(content, 0)
    count = 0
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            if subgraph.Tensors(t).IsVariable():
                count += 1
    return count


def metadata_bytes(content):
    """(quantization parameter bytes, tensor name bytes) of a `.tflite` flatbuffer:
    float32 scales + int64 zero points (per channel for int8 kernels) and names."""
    model = _schema().Model.GetRootAsModel(content, 0)
    quant = names = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            names += len(tensor.Name() or b"")
            q = tensor.Quantization()
            if q is not None:
                quant += 4 * q.ScaleLength() + 8 * q.ZeroPointLength()
    return quant, names


def minify(content):
    """`content` without tensor names and without the quantization parameters of
    tensors read only by `Densify` ops (see the module docstring); bytes."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    densify = {i for i, code in enumerate(model.operatorCodes or [])
               if _builtin_code(code) == schema.BuiltinOperator.DENSIFY}
    for graph in model.subgraphs or []:
        read_by_densify, read_by_others = set(), set()
        for op in graph.operators or []:
            readers = read_by_densify if op.opcodeIndex in densify else read_by_others
            readers.update(int(i) for i in (op.inputs if op.inputs is not None else []))
        for i, tensor in enumerate(graph.tensors or []):
            tensor.name = None
            if i in read_by_densify and i not in read_by_others:
                tensor.quantization = None
    builder = flatbuffers.Builder(len(content))
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    return bytes(builder.Output())
