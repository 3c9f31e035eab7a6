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

import flatbuffers

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
